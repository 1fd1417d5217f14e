"""The `train` stage: one flat training loop, a variant config in, a checkpoint and dvclive curves out."""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from handpose import distributed
from handpose.atomic import write_json
from handpose.checkpoints import load_checkpoint, load_pretrained, save_checkpoint, seed_checkpoint, seed_checkpoints
from handpose.config import TrainConfig, VariantConfig
from handpose.data.split import load_split
from handpose.device import setup_torch, uses_bf16
from handpose.heatmap_targets import HEATMAPS_FILE, load_heatmaps
from handpose.inference import infer
from handpose.losses import TERMS, Batch, TermSettings, scheduled_weights, term_settings
from handpose.metrics import joint_errors_mm, pose_error_mm
from handpose.model.pose_net import HandPoseNet, build_model, root_relative_in_scale, to_input
from handpose.skeleton import ROOT
from handpose.step import DivergenceCheck, FlatRMSprop, TrainingDiverged, train_step
from handpose.training_log import RUNNING, RUNNING_EVERY, TrainingLog

__all__ = ["TrainingDiverged", "learning_rate", "train", "train_variant"]


class Splits(NamedTuple):
    train: dict[str, np.ndarray]  # load_split's arrays; images memory-mapped
    heatmaps: np.ndarray  # the training split's targets, memory-mapped
    test: dict[str, np.ndarray]


def learning_rate(train: TrainConfig, epoch: int) -> float:
    """The paper's step schedule: lr, divided by 10 from the `lr_drop_at` fraction of the epochs on."""
    return train.lr * (0.1 if epoch >= math.ceil(train.lr_drop_at * train.epochs) else 1.0)


@dataclass
class Run:
    """What the loop of one variant and seed works with, built by `setup`."""

    model: HandPoseNet  # the module itself (rank 0 saves its weights)
    net: torch.nn.Module  # what the loop calls: the model, or its DDP wrapper under torchrun
    optimizer: torch.optim.Optimizer
    device: torch.device
    group: distributed.Group
    bf16: bool  # autocast of the forward pass; the lift to 3D and the losses stay fp32
    images: np.ndarray | torch.Tensor  # memory-mapped, or on the GPU whole (`resident`)
    targets: np.ndarray | torch.Tensor
    resident: bool
    labels: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # xyz, K, scale, on the device
    sampler: DistributedSampler
    batch: int  # this process's share of each global batch
    steps: int  # an epoch's
    every: int  # steps per running-loss point: at least one an epoch
    gather: Callable[[torch.Tensor], torch.Tensor]  # a batch's rows of every process, for Batch
    logged: list[str]  # the terms logged: the variant's own, and those any variant may use
    settings: dict[str, TermSettings]  # the terms' own settings, fitted to the training split
    start: int  # the first epoch to train (after a resumed checkpoint's)
    rows: list[dict]  # the log so far, a row an epoch
    running: list[dict]  # the running loss so far


def train(
    config: VariantConfig,
    seed: int,
    data: Splits,
    model_path: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    timings: list[dict] | None = None,
    pretrained: dict | None = None,
    inputs: str | None = None,
    live: TrainingLog | None = None,
) -> HandPoseNet:
    """Train one variant and seed into `model_path`, the backbone from `pretrained` if given. The checkpoint
    (model, optimiser, epoch, config, RNG, `inputs` fingerprint, log) is rewritten after every epoch, so an
    interrupted run resumes from its last finished one; `live` gets each epoch's row and the running loss
    as run `seed<k>`, `timings` each epoch's wall time. Under torchrun each process trains its share of
    each global batch; rank 0 alone writes files."""
    tcfg, name, model_path = config.train, config.variant, Path(model_path)
    timings = [] if timings is None else timings
    r = setup(config, seed, data, model_path, resume, pretrained, inputs)
    xyz, K, scale = r.labels
    live, run = (live if r.group.main else None), f"seed{seed}"
    _replay(live, run, seed, r)

    for epoch in range(r.start, tcfg.epochs):
        # This epoch's lr and loss weights.
        lr = learning_rate(tcfg, epoch)
        r.optimizer.set_lr(lr)
        weights = scheduled_weights(config.losses, r.settings, epoch, tcfg.epochs)
        r.net.train()
        sums = dict.fromkeys(("loss", *r.logged), 0.0)  # device tensors after the first step: no sync per step
        r.sampler.set_epoch(epoch)
        order = np.fromiter(r.sampler, np.int64)
        order_on_device = torch.from_numpy(order).to(r.device)  # one copy an epoch, not one a step
        window = torch.zeros((), device=r.device)  # the loss summed since the last running-loss point
        check = _divergence_check(name, seed, epoch, r)
        tic = time.perf_counter()
        desc, shown = f"{name} epoch {epoch + 1}/{tcfg.epochs}", progress and r.group.main
        bar = tqdm(range(r.steps), desc=desc, disable=not shown, leave=False, mininterval=1.0)  # DVC logs keep redraws
        for step in bar:
            # One batch: its rows of the images and targets, the forward pass, one step on its losses.
            idx = order_on_device[step * r.batch : (step + 1) * r.batch]
            image, target = _batch_rows(r, order[step * r.batch : (step + 1) * r.batch], idx)
            root = xyz[idx, ROOT]
            with torch.autocast(r.device.type, dtype=torch.bfloat16, enabled=r.bf16):
                out = r.net(to_input(image, tcfg.channels_last), K[idx], root[:, 2], scale[idx])
            pose, true_pose = (root_relative_in_scale(p, root, scale[idx]) for p in (out["xyz"], xyz[idx]))
            batch_of = Batch(pose, true_pose, out["heatmaps"], target, r.gather)
            loss, terms = train_step(r.optimizer, batch_of, weights, r.logged, r.settings, check, step)
            for term, value in {"loss": loss, **terms}.items():
                sums[term] = sums[term] + value.detach()
            # The running loss: this process's share of the batch, a host sync per point.
            window = window + loss.detach()
            if (step + 1) % r.every == 0:
                running = {"step": epoch * r.steps + step + 1, RUNNING: float(window) / r.every}
                r.running.append(running)
                window = torch.zeros_like(window)
                if live is not None:
                    live.log(running["step"], {RUNNING: running[RUNNING]}, run)
            if shown and step % 25 == 0:  # reading the loss waits for the device
                bar.set_postfix(loss=f"{float(sums['loss']) / (step + 1):.3g}", refresh=False)
        check.confirm()  # before anything of this epoch is kept
        seconds = time.perf_counter() - tic

        # The epoch's log row (mean terms, the test split's error) and the checkpoint to resume from.
        r.rows.append(row := _log_row(r, epoch, lr, weights, sums, data.test, tcfg.channels_last))
        # Timings vary from run to run, so they stay out of the log, the checkpoint and the metrics.
        timings.append({"epoch": epoch + 1, "seconds": seconds, "samples_per_s": r.steps * tcfg.batch_size / seconds})
        if r.group.main:
            tqdm.write(f"{name} epoch {epoch + 1}: loss {row['loss']:.4g}, test pose error "
                       f"{row['test_pose_error_mm']:.2f} mm, {timings[-1]['samples_per_s']:.0f} samples/s")  # fmt: skip
            save_checkpoint(model_path, config, int(data.train["image_size"]), seed=seed, model=r.model.state_dict(),
                            optimizer=r.optimizer.state_dict(), epoch=epoch, log=r.rows, running=r.running,
                            rng=torch.get_rng_state(), inputs=inputs)  # fmt: skip
        if live is not None:
            live.log((epoch + 1) * r.steps, row, run, latest={"seed": seed, "epoch": epoch + 1})
        distributed.barrier(r.group)  # no rank runs ahead of the checkpoint it would resume from
    return r.model


def setup(
    config: VariantConfig,
    seed: int,
    data: Splits,
    model_path: Path,
    resume: bool,
    pretrained: dict | None,
    inputs: str | None,
) -> Run:
    """The model (from the pretrained backbone, on this process's device), its optimiser, the state of
    a resumed run, and the training split where the loop reads it."""
    tcfg = config.train
    # The model on this process's device, then what a resumed checkpoint holds.
    device, group = _placed(tcfg)
    torch.manual_seed(seed)
    model = build_model(config.model, int(data.train["image_size"]))
    if pretrained is not None:
        model.backbone.load_state_dict(pretrained)
    if group.world > 1 and device.type == "cuda":  # BatchNorm over the global batch (CPU has no SyncBatchNorm)
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if tcfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # After the moves above: it holds the placed parameters. A pretrained backbone may learn slower.
    factors = {"backbone": tcfg.backbone_lr_factor} if pretrained is not None and tcfg.backbone_lr_factor != 1 else None
    optimizer = FlatRMSprop(model, lr=tcfg.lr, lr_factors=factors)
    log = tqdm.write if group.main else lambda _: None
    log(f"{config.variant}: {sum(p.numel() for p in model.parameters()):,} parameters on {device} x {group.world}")
    start, rows, running = _resume(model, optimizer, config, seed, inputs, model_path, resume, group, log)

    # Images and heatmaps (uint8, float16) go to a GPU whole when they fit, so that no batch waits for
    # the host; otherwise they stay memory-mapped and each batch reads its own rows, so memory is
    # bounded whatever the split's size. The small labels live on the device.
    images, targets = data.train["images"], data.heatmaps
    resident = _fits_on(device, images, targets)
    if resident:
        images, targets = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (images, targets))
    labels = tuple(torch.from_numpy(data.train[key]).to(device) for key in ("xyz", "K", "scale"))
    if len(images) < tcfg.batch_size:
        raise ValueError(f"train.batch_size = {tcfg.batch_size} is larger than the {len(images)} training samples")
    # The order is drawn from (seed, epoch), so a resumed run needs no sampler state; with drop_last,
    # global batch k is the same images whatever the number of processes.
    sampler = DistributedSampler(range(len(images)), group.world, group.rank, seed=seed, drop_last=True)
    batch = tcfg.batch_size // group.world

    # The variant's own terms are optimised; every other term is logged too, for comparison across
    # variants, except those whose settings only their own variants carry.
    logged = [t for t, term in TERMS.items() if term.settings is None or t in config.losses]
    poses = root_relative_in_scale(labels[0], labels[0][:, ROOT], labels[2])
    settings = {t: term_settings(t, values).fitted(poses) for t, values in config.term_settings.items()}
    net = DistributedDataParallel(model) if group.world > 1 else model
    steps = len(sampler) // batch  # the incomplete last batch is dropped: BatchNorm needs > 1 sample
    return Run(
        model, net, optimizer, device, group, uses_bf16(tcfg, device), images, targets, resident, labels, sampler,
        batch, steps, min(RUNNING_EVERY, steps), lambda rows: distributed.all_gather(group, rows),
        logged, settings, start, rows, running,
    )  # fmt: skip


def _log_row(
    r: Run, epoch: int, lr: float, weights: dict[str, float], sums: dict, test_split: dict, channels_last: bool
) -> dict:
    """An epoch's row of the log: its lr and scheduled weights, each term's mean over the epoch's steps
    and processes, and the test pose error (with rank 0's BatchNorm statistics on every rank)."""
    distributed.broadcast_from_main(r.group, list(r.model.buffers()))
    mean = {k: float(distributed.all_sum(r.group, v)) / r.group.world / r.steps for k, v in sums.items()}
    return {
        "epoch": epoch + 1,
        "lr": lr,
        **{f"lambda_{t}": weights.get(t, 0.0) for t, term in TERMS.items() if term.settings is not None},
        **{("loss" if k == "loss" else f"loss_{k}"): v for k, v in mean.items()},
        "test_pose_error_mm": _test_error(r.model, test_split, r.group, channels_last),
    }


def _replay(live: TrainingLog | None, run: str, seed: int, r: Run) -> None:
    """A resumed run's curves so far (each curve is its own file: order within a step is free)."""
    if live is None:
        return
    for point in r.running:
        live.log(point["step"], {RUNNING: point[RUNNING]}, run)
    for row in r.rows:
        live.log(row["epoch"] * r.steps, row, run, latest={"seed": seed, "epoch": row["epoch"]})


def _divergence_check(name: str, seed: int, epoch: int, r: Run) -> DivergenceCheck:
    """An epoch's check for a non-finite loss, naming the step it stops at."""
    return DivergenceCheck(
        lambda at: f"{name} seed {seed}: training diverged at epoch {epoch + 1}, step {at + 1}/{r.steps}",
        f"lower train.lr or the loss weights (the checkpoint, if any, holds epoch {epoch} of the run and is "
        "refused as unfinished)", r.device, r.group,
    )  # fmt: skip


def _batch_rows(r: Run, picked: np.ndarray, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's images (uint8) and heatmap targets (float32) on the device: indexed on the GPU when
    resident, else read from the memory maps (`picked`: the same rows, on the host)."""
    if r.resident:
        return r.images[idx], r.targets[idx].float()
    image = torch.from_numpy(r.images[picked]).to(r.device, non_blocking=True)
    return image, torch.from_numpy(r.targets[picked]).to(r.device, non_blocking=True).float()


def _resume(model, optimizer, config, seed, inputs, model_path, resume, group, log) -> tuple[int, list, list]:
    """The first epoch to train, the log and the running loss so far: from the checkpoint at `model_path`
    when `resume` and it came from the same inputs (config, seed, data and code), else from scratch,
    removing the older checkpoint so that it cannot outlive a failure of this one."""
    ckpt = load_checkpoint(model_path, next(model.parameters()).device) if resume and model_path.is_file() else None
    if ckpt is not None and (ckpt["config"], ckpt["seed"], ckpt.get("inputs")) != (config, seed, inputs):
        log(f"{model_path}: trained from other inputs (config, seed, data or code); starting over")
        ckpt = None
    distributed.barrier(group)  # every rank has read the checkpoint before rank 0 may remove it
    if ckpt is None:
        if group.main:
            model_path.unlink(missing_ok=True)
        return 0, [], []
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng"].cpu())
    start = ckpt["epoch"] + 1
    log(f"{config.variant} seed {seed}: resuming after epoch {start} of {config.train.epochs} ({model_path})")
    return start, ckpt["log"], ckpt.get("running", [])


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


def _fits_on(device: torch.device, *arrays: np.ndarray) -> bool:
    """Whether `arrays` fit in a quarter of a GPU's free memory (the rest is the model's and its
    activations'). On a CPU they stay memory-mapped."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return sum(a.nbytes for a in arrays) < free // 4


def _test_error(model: HandPoseNet, test_split: dict, group: distributed.Group, channels_last: bool) -> float:
    """The test pose error (mm); under torchrun each rank scores its share and the sums are all-reduced,
    so every rank gets the same number."""
    if group.world == 1:
        return pose_error_mm(infer(model, test_split, channels_last=channels_last)["xyz"], test_split["xyz"])
    share = {k: (v[group.rank :: group.world] if np.ndim(v) else v) for k, v in test_split.items()}
    device = next(model.parameters()).device
    errors = torch.zeros(2, dtype=torch.float64, device=device)
    if len(share["xyz"]):
        joint_errors = joint_errors_mm(infer(model, share, channels_last=channels_last)["xyz"], share["xyz"])
        errors += torch.tensor([joint_errors.sum(), joint_errors.size], dtype=torch.float64, device=device)
    total, count = distributed.all_sum(group, errors).tolist()
    return total / count


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
    live_dir: str | Path,
    timings_path: str | Path,
    resume: bool = False,
    progress: bool = True,
    pretrained: str | Path | None = None,
) -> None:
    """The `train` stage: one model per `train.seed` into model_dir/seed<k>.pt, each starting from the
    `pretrain` stage's backbone when `pretrained` names its file, its curves in the dvclive folder
    `live_dir` (run seed<k>); with `resume`, a seed whose checkpoint came from the same inputs continues
    from it (or is kept, if finished). Wall times go to `timings_path`, outside DVC's outputs, so reruns
    reproduce every output byte."""
    backbone = load_pretrained(pretrained, config.model) if pretrained else None
    train_split, test_split = load_split(split_dir, "train"), load_split(split_dir, "test")
    heatmaps = load_heatmaps(heatmaps_dir, len(train_split["images"]), config.model.heatmap_size)
    data_files = sorted(Path(split_dir).glob("*.np[yz]")) + [Path(heatmaps_dir) / HEATMAPS_FILE]
    inputs = inputs_fingerprint(config, data_files + ([Path(pretrained)] if pretrained else []))
    group = distributed.join(setup_torch(config.train).type)
    for stale in set(seed_checkpoints(model_dir, must_exist=False)) - set(config.train.seed):
        if group.main:
            seed_checkpoint(model_dir, stale).unlink()  # a seed no longer asked for must not reach evaluate
    # Removed if training raises (a diverged seed): no curves are left that look like a result.
    with TrainingLog(live_dir) if group.main else nullcontext() as live:
        timings = {}
        for seed in config.train.seed:
            path = seed_checkpoint(model_dir, seed)
            timings[seed] = []
            data = Splits(train_split, heatmaps, test_split)
            train(
                config,
                seed,
                data,
                path,
                resume=resume,
                progress=progress,
                timings=timings[seed],
                pretrained=backbone,
                inputs=inputs,
                live=live,
            )
    if group.main:
        write_json(timings_path, {"per_seed": timings})
    distributed.leave(group)
