"""The `data` stage's sources: `data.source` names a module of this package, which writes (or links)
the dataset in the interchange layout (FreiHAND v2's, data/layout.py) at the stage's output folder.
A module defines `prepare(config: DataConfig, out: Path, progress: bool) -> None`. Every later stage
reads that layout alone, through data/freihand.py."""

from __future__ import annotations

import importlib
from pathlib import Path

from handpose.config import ConfigError, DataConfig


def prepare(config: DataConfig, out: str | Path, progress: bool = True) -> None:
    """Run the source `data.source` names."""
    try:
        source = importlib.import_module(f"{__name__}.{config.source}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{config.source}":
            raise
        raise ConfigError(
            f"data.source: no source {config.source!r} (no module src/handpose/data/sources/{config.source}.py)"
        ) from None
    source.prepare(config, Path(out), progress=progress)
