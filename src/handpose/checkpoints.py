"""Checkpoints: save, load (tensors and plain data only: loading never runs code), build the model
they hold, and run it over a split. Train, evaluate and predict all go through here."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from handpose.atomic import atomic_path
from handpose.config import ModelConfig, TrainConfig, VariantConfig
from handpose.model.pose_net import HOURGLASS_SETTINGS, HandPoseNet, to_input
from handpose.skeleton import ROOT


def build_model(config: VariantConfig, image_size: int) -> HandPoseNet:
    return HandPoseNet(**config.model.model_dump(), image_size=image_size)


def setup_torch(train: TrainConfig) -> torch.device:
    """The device `train.device` names (auto = the GPU when there is one), with `train.threads` CPU
    threads and deterministic kernels: the same inputs give the same bytes on one machine, and a
    fixed thread count keeps the CPU's reduction order the same across machines."""
    if train.threads:
        torch.set_num_threads(train.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    name = train.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' requested but no CUDA GPU is available")
    return torch.device(name)


def save_checkpoint(path: str | Path, config: VariantConfig, image_size: int, **state: Any) -> None:
    """Write atomically: the config (as plain data), the image size, and `state` (model and optimiser
    state dicts, epoch, log rows, RNG states)."""
    with atomic_path(path) as tmp:
        torch.save({"config": config.model_dump(), "image_size": image_size, **state}, tmp)


def _safe_load(path: Path, device: torch.device | str, stage: str, check: Any) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model checkpoint not found (run the `{stage}` stage)")
    try:  # weights_only: tensors and plain data only, so a crafted file cannot run code
        checkpoint = torch.load(path, weights_only=True, map_location=device)
        check(checkpoint)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValidationError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not a handpose checkpoint, or not a safe one ({reason[:200]})") from None
    return checkpoint


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint as written by `save_checkpoint`, with its config parsed back into a VariantConfig."""

    def parse(checkpoint: dict) -> None:
        checkpoint["config"] = VariantConfig.model_validate(checkpoint["config"])

    return _safe_load(Path(path), device, "train", parse)


def save_pretrained(path: str | Path, model: ModelConfig, hourglass: dict | None, log: list[dict]) -> None:
    """The `pretrain` stage's output: the hourglass weights (None: no pretraining), the settings they
    fit, and the held-out log."""
    settings = model.model_dump(include=set(HOURGLASS_SETTINGS))
    with atomic_path(path) as tmp:
        torch.save({"hourglass": hourglass, "settings": settings, "log": log}, tmp)


def load_pretrained(path: str | Path, model: ModelConfig, device: torch.device | str = "cpu") -> dict | None:
    """The pretrained hourglass weights for `model` (None: the stage ran with no pretraining); refuses
    weights made for other hourglass settings, naming them."""

    def check(checkpoint: dict) -> None:
        checkpoint["hourglass"], checkpoint["settings"]  # noqa: B018 (KeyError: not a pretrain file)

    checkpoint = _safe_load(Path(path), device, "pretrain", check)
    wanted = model.model_dump(include=set(HOURGLASS_SETTINGS))
    if checkpoint["hourglass"] is not None and checkpoint["settings"] != wanted:
        theirs = checkpoint["settings"]
        differ = ", ".join(
            f"model.{k} {theirs.get(k)} there, {v} here" for k, v in wanted.items() if theirs.get(k) != v
        )
        raise ValueError(f"{path}: pretrained for other hourglass settings ({differ}); rerun the `pretrain` stage")
    return checkpoint["hourglass"]


def load_model(path: str | Path) -> tuple[HandPoseNet, dict[str, Any]]:
    """A trained model (in eval mode, on the CPU) and the rest of its checkpoint (config, log, ...).
    Refuses a checkpoint whose training did not finish or whose weights are not all finite."""
    checkpoint = load_checkpoint(path)
    epochs, done = checkpoint["config"].train.epochs, checkpoint["epoch"] + 1
    if done < epochs:
        raise ValueError(
            f"{path}: training did not finish ({done} of {epochs} epochs); "
            "finish it with `handpose train --resume` or rerun the `train` stage"
        )
    bad = [k for k, v in checkpoint["model"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        total = len(checkpoint["model"])
        raise ValueError(
            f"{path}: {len(bad)} of {total} weight tensors hold NaN or inf (first: {bad[0]}); the run diverged"
        )
    model = build_model(checkpoint["config"], checkpoint["image_size"])
    try:
        model.load_state_dict(checkpoint.pop("model"))
    except RuntimeError as err:
        raise ValueError(f"{path}: its weights do not fit the model its config describes ({str(err)[:200]})") from None
    return model.eval(), checkpoint


def seed_checkpoint(model_dir: str | Path, seed: int) -> Path:
    """Where the model of one seed lives: <model_dir>/seed<k>.pt."""
    return Path(model_dir) / f"seed{seed}.pt"


def seed_checkpoints(model_dir: str | Path, must_exist: bool = True) -> dict[int, Path]:
    """seed -> checkpoint for every seed's model in `model_dir`, in seed order."""
    found = {
        int(m.group(1)): p for p in Path(model_dir).glob("seed*.pt") if (m := re.fullmatch(r"seed(-?\d+)\.pt", p.name))
    }
    if not found and must_exist:
        raise FileNotFoundError(f"{model_dir}: no seed<k>.pt checkpoints (run the `train` stage)")
    return dict(sorted(found.items()))


@torch.no_grad()
def predict(
    model: HandPoseNet, split: dict[str, np.ndarray], batch_size: int = 64, channels_last: bool = False
) -> dict[str, np.ndarray]:
    """Run the model over a whole split (ground-truth root depth and scale given, as in the paper),
    on whichever device the model is on."""
    model.eval()
    device = next(model.parameters()).device
    xyz, uv = [], []
    for start in range(0, len(split["images"]), batch_size):
        sl = slice(start, start + batch_size)
        K, true_xyz, scale = (torch.from_numpy(split[key][sl]).to(device) for key in ("K", "xyz", "scale"))
        images = torch.from_numpy(np.array(split["images"][sl])).to(device)  # a copy: memory-mapped rows are read-only
        out = model(to_input(images, channels_last), K, true_xyz[:, ROOT, 2], scale)
        xyz.append(out["xyz"].cpu().numpy())
        uv.append(out["uv"].cpu().numpy())
    return {"xyz": np.concatenate(xyz), "uv": np.concatenate(uv)}
