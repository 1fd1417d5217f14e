"""The `pretrain` stage: the backbone learns to find joints, on L_hm alone, on hands that no variant trains
or tests on; every variant then starts from these weights and trains with its own losses.

Why: on the 2,000 training images the 2D branch stalls near the mean hand (uv error ~26 px at 224
after 5 epochs, and it overfits by 24), while one pass over 40,000 distinct hands reaches ~20 px.
Distinct hands are cheap here: the renderer draws them with another seed, straight into memory at
the input size. Each pass sees them through a camera rolled by a new random angle (augment.roll),
so a second pass is nearly as good as new hands, and cheaper.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from handpose.atomic import write_json
from handpose.augment import roll
from handpose.camera import FRAME_SIZE, project
from handpose.checkpoints import save_pretrained
from handpose.config import Params
from handpose.data.synthetic.arrays import render_arrays
from handpose.device import setup_torch, uses_bf16
from handpose.heatmaps import gaussian_heatmaps
from handpose.losses import Batch
from handpose.metrics import uv_error_px
from handpose.model import build_backbone
from handpose.model.pose_net import backbone_joints, to_input
from handpose.step import DivergenceCheck, FlatRMSprop, train_step
from handpose.training_log import TrainingLog

HELD_OUT = 200  # extra hands, never trained on, that measure the 2D error during pretraining
EVALUATIONS = 10  # held-out measurements over the run (the log's rows)
BN_IMAGES, BN_BATCH = 2000, 32  # hands that re-estimate BatchNorm's statistics for the averaged weights


class WeightAverage:
    """The running mean of a FlatRMSprop's weights from step `start` on (stochastic weight averaging): one
    flat buffer beside the optimiser's. The mean of a run's late weights sits in a wider basin than its
    last weights, and those are what real photos punish (docs/data.md)."""

    def __init__(self, optimizer: FlatRMSprop, start: int):
        self.weights = optimizer.param_groups[0]["params"][0]
        self.mean, self.count, self.start = torch.zeros_like(self.weights), 0, start

    def update(self, step: int) -> None:
        if step >= self.start:
            self.count += 1
            self.mean += (self.weights.detach() - self.mean) / self.count

    @torch.no_grad()
    def apply(self, backbone: torch.nn.Module, images: np.ndarray, channels_last: bool, bf16: bool) -> None:
        """Put the mean into the backbone and re-estimate its BatchNorm statistics, which the mean's
        activations no longer match, over `images` (uint8, the input size)."""
        self.weights.copy_(self.mean)
        norms = [m for m in backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative mean over the batches below
        device = self.weights.device
        for start in range(0, len(images), BN_BATCH):
            batch = to_input(torch.from_numpy(images[start : start + BN_BATCH]).to(device), channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                backbone(batch)
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum


def cosine_lr(lr: float, step: int, steps: int) -> float:
    """The lr of step `step` of `steps`: `lr` at the first, decaying along half a cosine towards 0."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))


@torch.no_grad()
def held_out_uv_error_px(backbone: torch.nn.Module, held_out: dict[str, np.ndarray], channels_last: bool) -> float:
    """Mean 2D joint error (px at 224) of the last stack's soft-argmax on the held-out hands."""
    images = torch.from_numpy(held_out["images"]).to(next(backbone.parameters()).device)
    uv = backbone_joints(backbone, images, FRAME_SIZE, channels_last).cpu().numpy()
    backbone.train()
    return uv_error_px(uv, project(held_out["xyz"], held_out["K"]))


def pretrain(
    params: Params, out: str | Path, live_dir: str | Path, timings_path: str | Path, progress: bool = True
) -> None:
    """Render `pretrain.n_hands` hands (+ HELD_OUT) with `pretrain.seed`, train the backbone
    `pretrain.passes` passes over them on L_hm, and write its weights to `out` with its log; the
    held-out 2D error, the mean L_hm and the lr are also the curves of the dvclive folder `live_dir`."""
    cfg, model_cfg, channels_last = params.pretrain, params.model, params.train.channels_last
    device = setup_torch(params.train)
    bf16 = uses_bf16(params.train, device)
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(model_cfg).to(device)
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    rows: list[dict] = []
    with TrainingLog(live_dir) as live:  # removed if this raises: a diverged run leaves no curves
        per_pass = cfg.n_hands // cfg.batch_size
        steps = per_pass * cfg.passes
        seconds = 0.0
        if steps:
            hands = render_arrays(cfg.n_hands + HELD_OUT, cfg.seed, model_cfg.input_size, progress=progress)
            held_out = {key: value[cfg.n_hands :] for key, value in hands.items()}
            images, xyz, K = (hands[key][: cfg.n_hands] for key in ("images", "xyz", "K"))
            optimizer = FlatRMSprop(backbone, lr=cfg.lr)
            average = WeightAverage(optimizer, int(cfg.average_from * steps))
            shuffle = torch.Generator().manual_seed(cfg.seed)
            every = max(1, steps // EVALUATIONS)
            where = lambda at: f"pretrain: training diverged at step {at + 1}/{steps}"  # noqa: E731
            check = DivergenceCheck(where, "lower pretrain.lr", device)
            total, tic = torch.zeros((), dtype=torch.float64, device=device), time.perf_counter()
            for step in tqdm(range(steps), desc="pretrain backbone", disable=not progress, mininterval=1.0):
                # A batch of rendered hands, each pass in a new order and through newly rolled cameras.
                pass_index, at = divmod(step, per_pass)
                if at == 0:
                    order = torch.randperm(cfg.n_hands, generator=shuffle).numpy()
                    rolls = np.random.default_rng([cfg.seed, pass_index]).uniform(-1, 1, cfg.n_hands)
                    angles = rolls * np.radians(cfg.roll)
                idx = order[at * cfg.batch_size : (at + 1) * cfg.batch_size]
                # The lr decays along a cosine to 0 by the last step: with a constant lr the last weights'
                # error on real photos swings from one held-out measurement to the next (docs/data.md).
                optimizer.param_groups[0]["lr"] = lr = cosine_lr(cfg.lr, step, steps)
                image, pose = images[idx], xyz[idx]
                if cfg.roll:
                    image, pose = roll(image, pose, K[idx], angles[idx])
                target = gaussian_heatmaps(
                    project(pose, K[idx]), FRAME_SIZE, model_cfg.heatmap_size, params.heatmap.sigma
                )
                # The backbone's forward pass and one step on L_hm alone.
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    heatmaps, _ = backbone(to_input(torch.from_numpy(image).to(device), channels_last))
                batch = Batch(heatmaps=heatmaps, true_heatmaps=torch.from_numpy(target).to(device))
                loss, _ = train_step(optimizer, batch, {"hm": 1.0}, [], {}, check, step)
                total += loss.detach()  # on the device: no host sync per step
                average.update(step)
                if step + 1 == steps and average.count:  # the saved (and last measured) weights: the mean
                    average.apply(backbone, images[:BN_IMAGES], channels_last, bf16)
                # Every `every` steps, a log row: the mean L_hm since the last one, and the held-out 2D error.
                if (step + 1) % every == 0 or step + 1 == steps:
                    check.confirm()
                    seconds += time.perf_counter() - tic
                    done = len(rows) * every
                    error = held_out_uv_error_px(backbone, held_out, channels_last)
                    rows.append({
                        "step": step + 1, "samples_seen": (step + 1) * cfg.batch_size,
                        "loss_hm": float(total) / (step + 1 - done), "held_out_uv_error_px": error, "lr": lr,
                    })  # fmt: skip
                    live.log(step + 1, {k: v for k, v in rows[-1].items() if k != "step"})
                    tqdm.write(f"pretrain step {step + 1}/{steps}: held-out uv error {error:.2f} px")
                    total, tic = torch.zeros_like(total), time.perf_counter()
        save_pretrained(out, model_cfg, backbone.state_dict() if steps else None, rows)
    speed = steps * cfg.batch_size / max(seconds, 1e-9)
    write_json(timings_path, {"seconds": seconds, "samples_per_s": speed})
