"""`data.source: synthetic`: the offline procedural renderer (data/synthetic/), `data.n_synthetic` poses
in `data.synthetic_versions` renderings each, and with `data.test_on: freihand_eval` an evaluation part of
`data.n_test` other poses."""

from __future__ import annotations

from pathlib import Path

from handpose.config import DataConfig
from handpose.data.synthetic import write_dataset


def prepare(config: DataConfig, out: Path, progress: bool = True, workers: int | None = None) -> None:
    write_dataset(
        out,
        n=config.n_synthetic,
        seed=config.seed,
        workers=workers,
        progress=progress,
        versions=config.synthetic_versions,
        n_eval=config.n_test if config.test_on == "freihand_eval" else 0,
    )
