"""Training curves, logged with dvclive: one Live folder per stage run (the backbone's, or one variant's),
each seed's curves in their own sub-folder (`plots/metrics/seed<k>/<name>.tsv`), the latest values in
its `metrics.json`, which dvc.yaml declares, so `dvc exp show` follows a run while it trains.

The x axis is the optimiser step. No timestamps or wall times go in, and a resumed run replays its
checkpoint's log first, so a rerun writes the same bytes. dvc.yaml stays the one place that declares
plots and metrics (`dvcyaml=False`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
from dvclive import Live

RUNNING_EVERY = 50  # optimiser steps per point of the running loss (fewer if an epoch is shorter)
RUNNING = "running_loss"  # its name; every other curve is logged once an epoch (or evaluation)


class _Live(Live):
    """dvclive's logger without its own DVC integration: DVC runs the stage and dvc.yaml declares what it
    writes, so the logger needs no repository. (dvclive would read git's HEAD, failing in a repository
    with no commit yet, and `dvc init` a git repository that has no DVC.)"""

    def _init_dvc(self) -> None:
        pass


class TrainingLog:
    """A dvclive folder, emptied when the first point is logged. `log(step, values, run)` appends one
    point to each named curve of `run` ("seed0"; "" for the folder's top level) and rewrites the
    summary. As a context: closed at the end, and removed if the block raises (a diverged or failed
    run leaves no curves that look like a result)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.live: Live | None = None

    def _open(self) -> Live:
        if self.live is None:
            logging.getLogger("dvclive").setLevel(logging.WARNING)  # not "Logging to experiment ..." per run
            self.live = _Live(str(self.folder), dvcyaml=False, save_dvc_exp=False, report=None)
        return self.live

    def log(self, step: int, values: dict[str, float], run: str = "", latest: dict | None = None) -> None:
        """`latest` goes to the summary alone, as `latest.<key>` (e.g. the seed and epoch just logged): a
        column that every run's summary has, so `dvc exp show` shows a running experiment's progress in
        it (the table's columns are the finished runs'; a new seed's would not show)."""
        live = self._open()
        live.step = step
        for name, value in values.items():
            live.log_metric(f"{run}/{name}" if run else name, value)
        if latest is not None:
            live.summary["latest"] = latest
        live.make_summary()

    def close(self) -> None:
        """Write the summary and the curves' folder even when nothing was logged (DVC declares both)."""
        live = self._open()
        (self.folder / "plots").mkdir(parents=True, exist_ok=True)
        live.make_summary()

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, kind: type | None, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            shutil.rmtree(self.folder, ignore_errors=True)


def read_curves(folder: str | Path, run: str = "") -> pd.DataFrame:
    """One run's per-epoch (or per-evaluation) curves as a table: a row per step at which they were
    logged, a column per curve; the running loss is left out (its steps are others)."""
    where = Path(folder) / "plots" / "metrics" / run
    tables = [pd.read_csv(path, sep="\t") for path in sorted(where.glob("*.tsv")) if path.stem != RUNNING]
    if not tables:
        raise FileNotFoundError(f"{where}: no training curves (run the stage that logs them)")
    merged = tables[0]
    for table in tables[1:]:
        merged = merged.merge(table, on="step", how="outer")
    return merged.sort_values("step", kind="stable").reset_index(drop=True)


def read_running(folder: str | Path, run: str = "") -> pd.DataFrame:
    """One run's running loss: a row per point (step, running_loss); empty if it logged none."""
    path = Path(folder) / "plots" / "metrics" / run / f"{RUNNING}.tsv"
    return pd.read_csv(path, sep="\t") if path.is_file() else pd.DataFrame(columns=["step", RUNNING])


def seed_runs(folder: str | Path) -> list[str]:
    """The seed<k> runs logged in `folder`, in seed order."""
    runs = [p.name for p in (Path(folder) / "plots" / "metrics").glob("seed*") if p.name[4:].lstrip("-").isdigit()]
    return sorted(runs, key=lambda name: int(name[4:]))
