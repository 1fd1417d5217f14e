"""Checkpoints: save, load (tensors and plain data only: loading never runs code), and build the model
they hold. Train, evaluate and predict all go through here."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handpose.atomic import atomic_path, non_finite
from handpose.camera import FRAME_SIZE
from handpose.config import Int, ModelConfig, Number, VariantConfig, describe
from handpose.model.pose_net import HandPoseNet, build_model


class LogRow(BaseModel):
    """One epoch of a checkpoint's log: what evaluate and the report read of it (more keys may follow)."""

    model_config = ConfigDict(extra="allow")
    epoch: Annotated[Int, Field(ge=1)]
    loss: Number
    test_pose_error_mm: Annotated[Number, Field(ge=0)]


class Trained(BaseModel):
    """A `train` checkpoint, checked for sense as well as safety: its sizes, its log, finite weights."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)
    config: VariantConfig
    image_size: Annotated[Int, Field(ge=FRAME_SIZE, le=FRAME_SIZE)]  # every split is in FreiHAND's 224 frame
    seed: Int
    epoch: Annotated[Int, Field(ge=0)]  # the last finished one, from 0
    log: Annotated[list[LogRow], Field(min_length=1)]  # one row per finished epoch
    running: list[dict[str, Number]] = []
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]


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
        if not isinstance(checkpoint, dict):
            raise TypeError(f"a {type(checkpoint).__name__}, not a mapping")
        check(checkpoint)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not a handpose checkpoint, or not a safe one ({reason[:200]})") from None
    except ValidationError as err:
        raise ValueError(f"{path}: not a handpose checkpoint: {describe(err, model=Trained)}") from None
    weights = checkpoint.get("model") or checkpoint.get("weights") or {}
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(
            f"{path}: {len(bad)} of {len(weights)} weight tensors hold NaN or inf (first: {bad[0]}); the run diverged"
        )
    return checkpoint


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint as written by `save_checkpoint`, with its config parsed back into a VariantConfig."""

    def parse(checkpoint: dict) -> None:
        trained = Trained.model_validate(checkpoint)
        if [row.epoch for row in trained.log] != list(range(1, trained.epoch + 2)):
            epochs = [row.epoch for row in trained.log]
            raise TypeError(f"its log has epochs {epochs[:10]}, not 1 to {trained.epoch + 1}")
        if trained.epoch >= trained.config.train.epochs:
            raise TypeError(f"epoch {trained.epoch + 1} is past its config's {trained.config.train.epochs}")
        checkpoint["config"] = trained.config

    return _safe_load(Path(path), device, "train", parse)


def pretrained_for(model: ModelConfig) -> dict[str, Any]:
    """What pretrained backbone weights depend on: the input size, the backbone and its settings."""
    return {"input_size": model.input_size, "backbone": model.backbone, "settings": model.backbone_settings}


def save_pretrained(path: str | Path, model: ModelConfig, weights: dict | None, log: list[dict]) -> None:
    """The `pretrain` stage's output: the backbone's weights (None: no pretraining), what they fit
    (`pretrained_for`), and the held-out log."""
    with atomic_path(path) as tmp:
        torch.save({"weights": weights, "fits": pretrained_for(model), "log": log}, tmp)


def load_pretrained(path: str | Path, model: ModelConfig, device: torch.device | str = "cpu") -> dict | None:
    """The pretrained backbone weights for `model` (None: the stage ran with no pretraining); refuses
    weights made for another backbone or other settings, naming them."""

    def check(checkpoint: dict) -> None:
        weights, fits = checkpoint["weights"], checkpoint["fits"]  # KeyError: not a pretrain file
        if not (weights is None or isinstance(weights, dict)) or not isinstance(fits, dict):
            raise TypeError("its weights or what they fit are not mappings")
        if weights and not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise TypeError("its weights are not all tensors")
        if bad := non_finite(checkpoint.get("log", [])):
            raise TypeError(f"its log's {bad[0]} is {bad[1]}")

    checkpoint = _safe_load(Path(path), device, "pretrain", check)
    theirs, wanted = _flat(checkpoint["fits"]), _flat(pretrained_for(model))
    if checkpoint["weights"] is not None and theirs != wanted:
        differ = ", ".join(f"{k} {theirs.get(k)} there, {v} here" for k, v in wanted.items() if theirs.get(k) != v)
        raise ValueError(f"{path}: pretrained for another backbone ({differ}); rerun the `pretrain` stage")
    return checkpoint["weights"]


def _flat(fits: dict[str, Any]) -> dict[str, Any]:
    """`pretrained_for`'s record as params keys: model.input_size, model.backbone, model.<backbone>.<key>."""
    settings = {f"model.{fits.get('backbone')}.{k}": v for k, v in (fits.get("settings") or {}).items()}
    return {"model.input_size": fits.get("input_size"), "model.backbone": fits.get("backbone"), **settings}


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
    model = build_model(checkpoint["config"].model, checkpoint["image_size"])
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
