"""The network: a backbone (images -> per-stack heatmaps and features) and the pose head (pose_net.py).

A backbone is one module of this package, named by `model.backbone`, with its settings under its name
in params.yaml (`model.hourglass:`). The module defines
    Settings: a pydantic model of those settings, and
    build(settings, input_size) -> nn.Module, whose forward maps (B, 3, S, S) images to a list of
    per-stack (B, 21, S/4, S/4) heatmaps and the last (B, C, S/4, S/4) features, with `channels` = C.
Nothing else names it: pretraining, training, checkpoints and dvc.yaml take it by name.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pydantic import BaseModel, ValidationError
from torch import nn

from handpose.config import ConfigError, ModelConfig, describe


def backbone_module(name: str) -> ModuleType:
    """The module of backbone `name`, checked for the two things every backbone defines."""
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
        raise ConfigError(f"model.backbone: no backbone {name!r} (no module src/handpose/model/{name}.py)") from None
    if not (isinstance(getattr(module, "Settings", None), type) and callable(getattr(module, "build", None))):
        raise ConfigError(f"model.backbone: {module.__name__} is not a backbone (it needs Settings and build)")
    return module


def backbone_settings(model: ModelConfig) -> BaseModel:
    """The chosen backbone's settings, validated against its own schema."""
    schema = backbone_module(model.backbone).Settings
    try:
        return schema.model_validate(model.backbone_settings)
    except ValidationError as err:
        raise ConfigError(describe(err, prefix=f"model.{model.backbone}", model=schema)) from None


def build_backbone(model: ModelConfig) -> nn.Module:
    return backbone_module(model.backbone).build(backbone_settings(model), model.input_size)
