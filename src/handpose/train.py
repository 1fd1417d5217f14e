"""One flat training loop: a variant config in, a checkpoint and a per-epoch log out."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from handpose import distributed
from handpose.atomic import atomic_path, write_text
from handpose.checkpoints import (
    build_model,
    load_checkpoint,
    load_pretrained,
    predict,
    save_checkpoint,
    seed_checkpoint,
    seed_checkpoints,
    setup_torch,
)
from handpose.config import LOSS_TERMS, TrainConfig, VariantConfig
from handpose.data.split import load_split
from handpose.heatmaps import HEATMAPS_FILE, load_heatmaps
from handpose.losses import asm_weight, fit_shape_model, loss_terms
from handpose.metrics import joint_errors_mm, over_seeds, pose_error_mm
from handpose.model.pose_net import HandPoseNet, root_relative_in_scale, to_input
from handpose.skeleton import ROOT


class TrainingDiverged(ValueError):
    """A loss became NaN or infinite: the run stops, and its checkpoint stays marked unfinished."""


def learning_rate(train: TrainConfig, epoch: int) -> float:
    """The paper's step schedule: lr, divided by 10 from the `lr_drop_at` fraction of the epochs on."""
    return train.lr * (0.1 if epoch >= math.ceil(train.lr_drop_at * train.epochs) else 1.0)


def _write_log(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def train(
    config: VariantConfig,
    seed: int,
    train_split: dict,
    heatmaps: np.ndarray,
    test_split: dict,
    model_path: str | Path,
    log_path: str | Path,
    resume: bool = False,
    progress: bool = True,
    timings: list[dict] | None = None,
    pretrained: dict | None = None,
    inputs: str | None = None,
) -> HandPoseNet:
    """Train one variant, its hourglass starting from the `pretrained` weights if given. After every
    epoch the checkpoint (model, optimiser, epoch, config, the `inputs` fingerprint) and
    the log are rewritten whole, so an interrupted run resumes from its last finished epoch. Each
    epoch's wall time is appended to `timings`. Under torchrun, every process trains its share of
    each global batch (DistributedDataParallel), and rank 0 alone writes files."""
    timings = [] if timings is None else timings
    tcfg, losses, name = config.train, config.losses, config.variant
    model_path, log_path = Path(model_path), Path(log_path)
    device, group = _placed(tcfg)
    torch.manual_seed(seed)
    image_size = int(train_split["image_size"])
    model = build_model(config, image_size)
    if pretrained is not None:
        model.hourglass.load_state_dict(pretrained)
    if group.world > 1 and device.type == "cuda":  # BatchNorm over the global batch (CPU has no SyncBatchNorm)
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if tcfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # foreach: one multi-tensor update instead of a Python loop over ~270 tensors (~6% of a CPU step)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=tcfg.lr, foreach=True)
    log = tqdm.write if group.main else lambda _: None
    log(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters on {device} x {group.world}")
    start, rows = 0, []
    ckpt = load_checkpoint(model_path, device) if resume and model_path.is_file() else None
    if ckpt is not None and (ckpt["config"], ckpt["seed"], ckpt.get("inputs")) != (config, seed, inputs):
        log(f"{model_path}: trained from other inputs (config, seed, data or code); starting over")
        ckpt = None
    distributed.barrier(group)  # every rank has read the checkpoint before rank 0 may remove it
    if ckpt is None and group.main:  # a fresh run: an older run's files must not outlive a failure of this one
        model_path.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)
    elif ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, rows = ckpt["epoch"] + 1, ckpt["log"]
        torch.set_rng_state(ckpt["rng"].cpu())
        log(f"{name} seed {seed}: resuming after epoch {start} of {tcfg.epochs} ({model_path})")
    net = DistributedDataParallel(model) if group.world > 1 else model

    # Images and heatmaps stay memory-mapped (uint8, float16): each batch reads its own rows, so
    # memory is bounded whatever the split's size; the small labels live on the device.
    images, targets = train_split["images"], heatmaps
    xyz = torch.from_numpy(train_split["xyz"]).to(device)
    K, scale = torch.from_numpy(train_split["K"]).to(device), torch.from_numpy(train_split["scale"]).to(device)
    batch = tcfg.batch_size // group.world  # this process's share of each global batch
    if len(images) < tcfg.batch_size:
        raise ValueError(f"train.batch_size = {tcfg.batch_size} is larger than the {len(images)} training samples")
    # The order is drawn from (seed, epoch), so a resumed run needs no sampler state; with drop_last,
    # global batch k is the same images whatever the number of processes.
    sampler = DistributedSampler(range(len(images)), group.world, group.rank, seed=seed, drop_last=True)
    # Every term is logged for comparison across variants; only the variant's own are optimised.
    # L_asm needs asm.*, which only asm variants' configs carry.
    logged = [t for t in LOSS_TERMS if t != "asm" or "asm" in losses]
    asm_k = config.asm.k if config.asm else 0
    dataset_shape = None
    if config.asm and config.asm.pca == "dataset":
        dataset_shape = fit_shape_model(root_relative_in_scale(xyz, xyz[:, ROOT], scale), asm_k)

    for epoch in range(start, tcfg.epochs):
        lr = learning_rate(tcfg, epoch)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        lam = asm_weight(losses["asm"], config.asm.schedule, epoch, tcfg.epochs) if config.asm else 0.0
        weights = {**losses, "asm": lam} if "asm" in losses else losses
        net.train()
        sums = dict.fromkeys(("loss", *logged), 0.0)  # device tensors after the first step: no sync per step
        sampler.set_epoch(epoch)
        order = np.fromiter(sampler, np.int64)
        steps = len(order) // batch  # drop the incomplete last batch: BatchNorm needs > 1 sample
        tic = time.perf_counter()
        bar = tqdm(
            range(steps),
            desc=f"{name} epoch {epoch + 1}/{tcfg.epochs}",
            disable=not (progress and group.main),
            leave=False,
            mininterval=1.0,  # DVC logs keep every redraw
        )
        for step in bar:
            picked = order[step * batch : (step + 1) * batch]
            image = torch.from_numpy(images[picked]).to(device, non_blocking=True)
            target = torch.from_numpy(targets[picked]).to(device, non_blocking=True).float()
            idx = torch.from_numpy(picked).to(device)
            root = xyz[idx, ROOT]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=tcfg.bf16):
                out = net(to_input(image, tcfg.channels_last), K[idx], root[:, 2], scale[idx])
            pred = root_relative_in_scale(out["xyz"], root, scale[idx])
            true = root_relative_in_scale(xyz[idx], root, scale[idx])
            shape_model = dataset_shape
            if asm_k and shape_model is None and group.world > 1:  # the paper's PCA is of the whole batch
                shape_model = fit_shape_model(distributed.all_gather(group, true), asm_k)
            terms = loss_terms(logged, out["heatmaps"], target, pred, true, asm_k, shape_model)
            loss = sum(w * terms[term] for term, w in weights.items())
            # One host sync per step (cheap on CPU); every rank stops if any diverged, and nothing is kept.
            if not torch.isfinite(distributed.all_sum(group, loss)):
                raise _diverged(name, seed, epoch, step, steps, loss, terms)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] = sums["loss"] + loss.detach()
            for term, value in terms.items():
                sums[term] = sums[term] + value.detach()
            if progress and group.main and step % 25 == 0:  # reading the loss waits for the device
                bar.set_postfix(loss=f"{float(sums['loss']) / (step + 1):.3g}", refresh=False)
        seconds = time.perf_counter() - tic
        distributed.broadcast_from_main(group, list(model.buffers()))  # BatchNorm statistics: rank 0's
        rows.append(
            {
                "epoch": epoch + 1,
                "lr": lr,
                "lambda_asm": lam,
                **{
                    ("loss" if k == "loss" else f"loss_{k}"): float(distributed.all_sum(group, v)) / group.world / steps
                    for k, v in sums.items()
                },
                "test_pose_error_mm": _test_error(model, test_split, group, tcfg.channels_last),
            }
        )
        # Timings vary from run to run, so they stay out of the log, the checkpoint and the metrics.
        timings.append({"epoch": epoch + 1, "seconds": seconds, "samples_per_s": steps * tcfg.batch_size / seconds})
        log(
            f"{name} epoch {epoch + 1}: loss {rows[-1]['loss']:.4g}, "
            f"test pose error {rows[-1]['test_pose_error_mm']:.2f} mm, {timings[-1]['samples_per_s']:.0f} samples/s"
        )
        if group.main:
            save_checkpoint(
                model_path,
                config,
                image_size,
                seed=seed,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                epoch=epoch,
                log=rows,
                rng=torch.get_rng_state(),
                inputs=inputs,
            )
            _write_log(rows, log_path)
        distributed.barrier(group)  # no rank runs ahead of the checkpoint it would resume from
    return model


def _placed(tcfg: TrainConfig) -> tuple[torch.device, distributed.Group]:
    """This process's device and process group: under torchrun, GPU `LOCAL_RANK`, or on CPU a share of
    `train.threads` (the node's cores are shared by its processes)."""
    device = setup_torch(tcfg)
    group = distributed.join(device.type)
    if group.world > 1 and device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    elif group.world > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    if tcfg.batch_size % group.world:
        raise ValueError(f"train.batch_size = {tcfg.batch_size} does not split over {group.world} processes")
    return device, group


def _test_error(model: HandPoseNet, test_split: dict, group: distributed.Group, channels_last: bool) -> float:
    """The test pose error (mm); under torchrun each rank scores its share and the sums are all-reduced,
    so every rank gets the same number."""
    if group.world == 1:
        return pose_error_mm(predict(model, test_split, channels_last=channels_last)["xyz"], test_split["xyz"])
    share = {k: (v[group.rank :: group.world] if np.ndim(v) else v) for k, v in test_split.items()}
    device = next(model.parameters()).device
    errors = torch.zeros(2, dtype=torch.float64, device=device)
    if len(share["xyz"]):
        joint_errors = joint_errors_mm(predict(model, share, channels_last=channels_last)["xyz"], share["xyz"])
        errors += torch.tensor([joint_errors.sum(), joint_errors.size], dtype=torch.float64, device=device)
    total, count = distributed.all_sum(group, errors).tolist()
    return total / count


def _diverged(
    name: str, seed: int, epoch: int, step: int, steps: int, loss: torch.Tensor, terms: dict
) -> TrainingDiverged:
    bad = [f"loss_{term} = {float(value.detach())}" for term, value in terms.items() if not torch.isfinite(value)]
    return TrainingDiverged(
        f"{name} seed {seed}: training diverged at epoch {epoch + 1}, step {step + 1}/{steps}: "
        f"{', '.join(bad) or f'weighted loss = {float(loss.detach())}'}; lower train.lr or the loss weights "
        f"(the checkpoint, if any, holds epoch {epoch} of the run and is refused as unfinished)"
    )


def inputs_fingerprint(config: VariantConfig, files: list[Path]) -> str:
    """What a run's result depends on: its config, the data and pretrained `files`, and the package's
    modules this process has loaded (the code the stage runs: dvc.yaml's deps). `--resume` continues
    a checkpoint only when this matches, so a rerun for any other reason starts over."""
    package = Path(__file__).parent
    loaded = {Path(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
    code = sorted(path for path in loaded if path.is_relative_to(package))
    digest = hashlib.sha256(config.model_dump_json().encode())
    for name, path in [(f.name, f) for f in files] + [(str(f.relative_to(package)), f) for f in code]:
        digest.update(name.encode())
        with path.open("rb") as f:  # in pieces: a full-size split is gigabytes
            while piece := f.read(1 << 24):
                digest.update(piece)
    return digest.hexdigest()


def train_variant(
    config: VariantConfig,
    split_dir: str | Path,
    heatmaps_dir: str | Path,
    model_dir: str | Path,
    log_path: str | Path,
    timings_path: str | Path,
    resume: bool = False,
    progress: bool = True,
    pretrained: str | Path | None = None,
) -> None:
    """The `train` stage: one model per `train.seed` into model_dir/seed<k>.pt (each with its own log),
    each starting from the `pretrain` stage's hourglass when `pretrained` names its file; with `resume`,
    a seed whose checkpoint came from the same inputs continues from it (or is kept, if finished),
    and the per-epoch mean over seeds in `log_path` (with `*_sd` columns when there are several).
    Wall times go to `timings_path`, outside DVC's outputs, so reruns reproduce every output byte."""
    hourglass = load_pretrained(pretrained, config.model) if pretrained else None
    train_split, test_split = load_split(split_dir, "train"), load_split(split_dir, "test")
    heatmaps = load_heatmaps(heatmaps_dir, len(train_split["images"]), config.model.heatmap_size)
    data_files = sorted(Path(split_dir).glob("*.np[yz]")) + [Path(heatmaps_dir) / HEATMAPS_FILE]
    inputs = inputs_fingerprint(config, data_files + ([Path(pretrained)] if pretrained else []))
    group = distributed.join(setup_torch(config.train).type)
    for stale in set(seed_checkpoints(model_dir, must_exist=False)) - set(config.train.seed):
        for path in (seed_checkpoint(model_dir, stale), seed_checkpoint(model_dir, stale).with_suffix(".csv")):
            if group.main:
                path.unlink(missing_ok=True)  # a seed no longer asked for must not reach evaluate
    logs, timings = [], {}
    for seed in config.train.seed:
        path = seed_checkpoint(model_dir, seed)
        timings[seed] = []
        train(
            config,
            seed,
            train_split,
            heatmaps,
            test_split,
            path,
            path.with_suffix(".csv"),
            resume,
            progress,
            timings[seed],
            hourglass,
            inputs,
        )
        logs.append(pd.read_csv(path.with_suffix(".csv")))
    if group.main:
        write_text(timings_path, json.dumps({"per_seed": timings}, indent=2) + "\n")
        runs_by_epoch = pd.concat(logs).groupby("epoch")
        by_epoch = [{"epoch": epoch, **over_seeds(runs.drop(columns="epoch"))} for epoch, runs in runs_by_epoch]
        with atomic_path(log_path) as tmp:
            pd.DataFrame(by_epoch).to_csv(tmp, index=False)
    distributed.leave(group)
