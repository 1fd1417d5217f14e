"""The `pretrain` stage: the hourglass learns to find joints, on L_hm alone, on hands that no variant
trains or tests on; every variant then starts from these weights and trains with its own losses.

Why: on the 2,000 training images the 2D branch stalls near the mean hand (uv error ~26 px at 224
after 5 epochs, and it overfits by 24), while one pass over 40,000 distinct hands reaches ~20 px
(benchmarks/heatmap_diagnosis.py). Distinct hands are cheap here: the renderer draws them with
another seed, straight into memory at the input size. Each pass sees them through a camera rolled
by a new random angle (augment.roll), so a second pass is nearly as good as new hands, and cheaper.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from handpose.atomic import atomic_path, write_text
from handpose.augment import roll
from handpose.camera import FRAME_SIZE, project
from handpose.checkpoints import save_pretrained, setup_torch
from handpose.config import Params
from handpose.data.synthetic.arrays import render_arrays
from handpose.heatmaps import gaussian_heatmaps, heatmap_to_image, soft_argmax
from handpose.losses import heatmap_loss
from handpose.model.pose_net import HOURGLASS_SETTINGS, hourglass_for, to_input

HELD_OUT = 200  # extra hands, never trained on, that measure the 2D error during pretraining
EVALUATIONS = 10  # held-out measurements over the run (the log's rows)


@torch.no_grad()
def uv_error_px(hourglass: torch.nn.Module, held_out: dict[str, np.ndarray], channels_last: bool) -> float:
    """Mean 2D joint error (px at 224) of the last stack's soft-argmax on the held-out hands."""
    hourglass.eval()
    device = next(hourglass.parameters()).device
    images = to_input(torch.from_numpy(held_out["images"]).to(device), channels_last)
    last = hourglass(images)[0][-1]
    uv = heatmap_to_image(soft_argmax(last), FRAME_SIZE, last.shape[-1]).cpu().numpy()
    hourglass.train()
    return float(np.linalg.norm(uv - project(held_out["xyz"], held_out["K"]), axis=-1).mean())


def pretrain(
    params: Params, out: str | Path, log_path: str | Path, timings_path: str | Path, progress: bool = True
) -> None:
    """Render `pretrain.n_hands` hands (+ HELD_OUT) with `pretrain.seed`, train the hourglass
    `pretrain.passes` passes over them, and write its weights to `out` with a log of the held-out 2D error."""
    cfg, model_cfg = params.pretrain, params.model
    device = setup_torch(params.train)
    torch.manual_seed(cfg.seed)
    hourglass = hourglass_for(**model_cfg.model_dump(include=set(HOURGLASS_SETTINGS))).to(device)
    if params.train.channels_last:
        hourglass = hourglass.to(memory_format=torch.channels_last)
    rows: list[dict] = []
    per_pass = cfg.n_hands // cfg.batch_size
    steps = per_pass * cfg.passes
    seconds = 0.0
    if steps:
        hands = render_arrays(cfg.n_hands + HELD_OUT, cfg.seed, model_cfg.input_size, progress=progress)
        held_out = {key: value[cfg.n_hands :] for key, value in hands.items()}
        images, xyz, K = (hands[key][: cfg.n_hands] for key in ("images", "xyz", "K"))
        optimizer = torch.optim.RMSprop(hourglass.parameters(), lr=cfg.lr, foreach=True)
        shuffle = torch.Generator().manual_seed(cfg.seed)
        every = max(1, steps // EVALUATIONS)
        total, tic = 0.0, time.perf_counter()
        for step in tqdm(range(steps), desc="pretrain hourglass", disable=not progress, mininterval=1.0):
            pass_index, at = divmod(step, per_pass)
            if at == 0:  # a new pass: a new order and new camera rolls
                order = torch.randperm(cfg.n_hands, generator=shuffle).numpy()
                rolls = np.random.default_rng([cfg.seed, pass_index]).uniform(-1, 1, cfg.n_hands)
                angles = rolls * np.radians(cfg.roll)
            idx = order[at * cfg.batch_size : (at + 1) * cfg.batch_size]
            image, pose = images[idx], xyz[idx]
            if cfg.roll:
                image, pose = roll(image, pose, K[idx], angles[idx])
            target = gaussian_heatmaps(project(pose, K[idx]), FRAME_SIZE, model_cfg.heatmap_size, params.heatmap.sigma)
            heatmaps, _ = hourglass(to_input(torch.from_numpy(image).to(device), params.train.channels_last))
            loss = heatmap_loss(heatmaps, torch.from_numpy(target).to(device))
            if not torch.isfinite(loss):  # nothing diverged is ever written
                raise ValueError(
                    f"pretrain: L_hm = {float(loss.detach())} at step {step + 1}/{steps}; lower pretrain.lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            if (step + 1) % every == 0 or step + 1 == steps:
                seconds += time.perf_counter() - tic
                done = len(rows) * every
                rows.append(
                    {
                        "step": step + 1,
                        "samples_seen": (step + 1) * cfg.batch_size,
                        "loss_hm": total / (step + 1 - done),
                        "held_out_uv_error_px": uv_error_px(hourglass, held_out, params.train.channels_last),
                    }
                )
                error = rows[-1]["held_out_uv_error_px"]
                tqdm.write(f"pretrain step {step + 1}/{steps}: held-out uv error {error:.2f} px")
                total, tic = 0.0, time.perf_counter()
    save_pretrained(out, model_cfg, hourglass.state_dict() if steps else None, rows)
    with atomic_path(log_path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "samples_seen", "loss_hm", "held_out_uv_error_px"])
        writer.writeheader()
        writer.writerows(rows)
    speed = steps * cfg.batch_size / max(seconds, 1e-9)
    write_text(timings_path, json.dumps({"seconds": seconds, "samples_per_s": speed}) + "\n")
