"""One flat training loop: a variant config in, a checkpoint and a per-epoch log out."""

from __future__ import annotations

import csv
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from handpose.atomic import atomic_path
from handpose.config import LOSS_TERMS, seeds_of
from handpose.losses import asm_weight, fit_shape_model, loss_terms
from handpose.metrics import pose_error_mm
from handpose.model.pose_net import HandPoseNet, predict, root_relative_in_scale, to_input
from handpose.skeleton import ROOT


def build_model(config: dict, image_size: int) -> HandPoseNet:
    return HandPoseNet(**config["model"], image_size=image_size)


def pick_device(name: str) -> torch.device:
    """`train.device`: auto = the GPU when there is one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but no CUDA GPU is available")
    return torch.device(name)


def learning_rate(train: dict, epoch: int) -> float:
    """The paper's step schedule: lr, divided by 10 from the `lr_drop_at` fraction of the epochs on."""
    return train["lr"] * (0.1 if epoch >= math.ceil(train["lr_drop_at"] * train["epochs"]) else 1.0)


def _write_log(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def train(
    config: dict,
    train_split: dict,
    heatmaps: np.ndarray,
    test_split: dict,
    model_path: str | Path,
    log_path: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> HandPoseNet:
    """Train one variant. After every epoch the checkpoint (model, optimiser, epoch, config) and
    the log are rewritten whole, so an interrupted run resumes from its last finished epoch."""
    tcfg, losses = config["train"], config["losses"]
    model_path, log_path = Path(model_path), Path(log_path)
    torch.manual_seed(tcfg["seed"])
    device = pick_device(tcfg["device"])
    model = build_model(config, int(train_split["image_size"])).to(device)
    if tcfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=tcfg["lr"])
    tqdm.write(f"{config['variant']}: {sum(p.numel() for p in model.parameters()):,} parameters on {device}")
    generator = torch.Generator().manual_seed(tcfg["seed"])  # batch order, apart from dropout's global RNG
    start, rows = 0, []
    if resume and model_path.is_file():
        ckpt = torch.load(model_path, weights_only=False, map_location=device)
        if ckpt["config"] != config:
            raise ValueError(f"{model_path}: checkpoint was trained with a different config; cannot resume")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, rows = ckpt["epoch"] + 1, ckpt["log"]
        torch.set_rng_state(ckpt["rng"].cpu())
        generator.set_state(ckpt["shuffle_rng"].cpu())

    # The whole split lives on the device (uint8 images, float16 heatmaps): no loader on the hot path.
    images = torch.from_numpy(train_split["images"]).to(device)
    targets = torch.from_numpy(heatmaps).to(device)
    xyz = torch.from_numpy(train_split["xyz"]).to(device)
    K, scale = torch.from_numpy(train_split["K"]).to(device), torch.from_numpy(train_split["scale"]).to(device)
    batch = tcfg["batch_size"]
    if len(images) < batch:
        raise ValueError(f"train.batch_size = {batch} is larger than the {len(images)} training samples")
    # Every term is logged for comparison across variants; only the variant's own are optimised.
    # L_asm needs asm.*, which only asm variants' configs carry.
    logged = [t for t in LOSS_TERMS if t != "asm" or "asm" in losses]
    asm_k = config["asm"]["k"] if "asm" in losses else 0
    shape_model = None
    if "asm" in losses and config["asm"]["pca"] == "dataset":
        shape_model = fit_shape_model(root_relative_in_scale(xyz, xyz[:, ROOT], scale), asm_k)

    for epoch in range(start, tcfg["epochs"]):
        lr = learning_rate(tcfg, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        lam = asm_weight(losses["asm"], config["asm"]["schedule"], epoch, tcfg["epochs"]) if "asm" in losses else 0.0
        weights = {**losses, "asm": lam} if "asm" in losses else losses
        model.train()
        sums = dict.fromkeys(("loss", *logged), 0.0)  # device tensors after the first step: no sync per step
        order = torch.randperm(len(images), generator=generator).to(device)
        steps = len(images) // batch  # drop the incomplete last batch: BatchNorm needs > 1 sample
        tic = time.perf_counter()
        bar = tqdm(
            range(steps),
            desc=f"{config['variant']} epoch {epoch + 1}/{tcfg['epochs']}",
            disable=not progress,
            leave=False,
            mininterval=1.0,  # DVC logs keep every redraw
        )
        for step in bar:
            idx = order[step * batch : (step + 1) * batch]
            root = xyz[idx, ROOT]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=tcfg["bf16"]):
                out = model(to_input(images[idx], tcfg["channels_last"]), K[idx], root[:, 2], scale[idx])
            pred = root_relative_in_scale(out["xyz"], root, scale[idx])
            true = root_relative_in_scale(xyz[idx], root, scale[idx])
            terms = loss_terms(logged, out["heatmaps"], targets[idx].float(), pred, true, asm_k, shape_model)
            loss = sum(w * terms[name] for name, w in weights.items())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] = sums["loss"] + loss.detach()
            for name, value in terms.items():
                sums[name] = sums[name] + value.detach()
            if progress and step % 25 == 0:  # reading the loss waits for the device
                bar.set_postfix(loss=f"{float(sums['loss']) / (step + 1):.3g}", refresh=False)
        seconds = time.perf_counter() - tic
        val = predict(model, test_split, channels_last=tcfg["channels_last"])
        rows.append(
            {
                "epoch": epoch + 1,
                "lr": lr,
                "lambda_asm": lam,
                **{("loss" if k == "loss" else f"loss_{k}"): float(v) / steps for k, v in sums.items()},
                "val_pose_error_mm": pose_error_mm(val["xyz"], test_split["xyz"]),
                "seconds": seconds,
                "samples_per_s": steps * batch / seconds,
            }
        )
        tqdm.write(
            f"{config['variant']} epoch {epoch + 1}: loss {rows[-1]['loss']:.4g}, "
            f"val pose error {rows[-1]['val_pose_error_mm']:.2f} mm, {rows[-1]['samples_per_s']:.0f} samples/s"
        )
        with atomic_path(model_path) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "config": config,
                    "image_size": int(train_split["image_size"]),
                    "log": rows,
                    "rng": torch.get_rng_state(),
                    "shuffle_rng": generator.get_state(),
                },
                tmp,
            )
        _write_log(rows, log_path)
    return model


def seed_checkpoint(model_dir: str | Path, seed: int) -> Path:
    """Where `train_seeds` keeps the model of one seed."""
    return Path(model_dir) / f"seed{seed}.pt"


def seed_checkpoints(model_dir: str | Path) -> dict[int, Path]:
    """seed -> checkpoint for every model `train_seeds` wrote into `model_dir`, in seed order."""
    found = {
        int(m.group(1)): p for p in Path(model_dir).glob("seed*.pt") if (m := re.fullmatch(r"seed(-?\d+)\.pt", p.name))
    }
    if not found:
        raise FileNotFoundError(f"{model_dir}: no seed<k>.pt checkpoints (run the `train` stage)")
    return dict(sorted(found.items()))


def train_seeds(
    config: dict,
    train_split: dict,
    heatmaps: np.ndarray,
    test_split: dict,
    model_dir: str | Path,
    log_path: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> None:
    """Train one model per `train.seed` into model_dir/seed<k>.pt (each with its own log) and
    write the per-epoch mean over seeds to `log_path` (with `*_sd` columns when there are several)."""
    logs = []
    for seed in seeds_of(config["train"]):
        seeded = {**config, "train": {**config["train"], "seed": seed}}
        path = seed_checkpoint(model_dir, seed)
        train(seeded, train_split, heatmaps, test_split, path, path.with_suffix(".csv"), resume, progress)
        logs.append(pd.read_csv(path.with_suffix(".csv")))
    by_epoch = pd.concat(logs).groupby("epoch", sort=True)
    summary = by_epoch.mean().reset_index()
    if len(logs) > 1:
        summary["val_pose_error_mm_sd"] = by_epoch["val_pose_error_mm"].std().to_numpy()
    with atomic_path(log_path) as tmp:
        summary.to_csv(tmp, index=False)


def load_model(path: str | Path) -> tuple[HandPoseNet, dict]:
    """A trained model (in eval mode, on the CPU) and its checkpoint (config, log, ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model checkpoint not found (run the `train` stage)")
    ckpt = torch.load(path, weights_only=False, map_location="cpu")
    model = build_model(ckpt["config"], ckpt["image_size"])
    model.load_state_dict(ckpt.pop("model"))
    return model.eval(), ckpt
