"""A tiny copy of this project's DVC pipeline in a fresh git repo, for end-to-end tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "data": {"n_synthetic": 40, "n_train": 24, "n_test": 8},
    "pretrain": {"n_hands": 8, "passes": 2},
    "model": {"input_size": 32, "hourglass": {"features": 16, "stacks": 2, "depth": 4}, "mlp_width": 32},
    # One thread: a tiny model gains nothing from a second, and two experiments of a queue run side by side.
    "train": {"epochs": 2, "threads": 1},
}


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=environment(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def environment() -> dict[str, str]:
    """This environment's `dvc`, `python` and `handpose` first on PATH, the checkout's src/ first on
    Python's path (as dvc.yaml's stages have it); no analytics."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": "src",
        "DVC_NO_ANALYTICS": "1",
    }


def new_project(repo: Path, params: dict | None = None) -> Path:
    """`repo` holding the pipeline (dvc.yaml, src, chart templates) with TINY params updated by
    `params` (section -> keys; a `variants` mapping replaces the variants), git and DVC initialised."""
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    values = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, changes in [*TINY.items(), *(params or {}).items()]:
        if section == "variants":
            values[section] = changes
        else:
            values[section].update(changes)
    (repo / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.name", "handpose tests"], repo)
    run(["git", "config", "user.email", "tests@handpose.invalid"], repo)
    run(["dvc", "init", "-q"], repo)
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")  # analytics off, the offline plots page
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots", ignore=shutil.ignore_patterns("offline.html"))
    run(["handpose", "plots-template", "--out", ".dvc/plots/offline.html"], repo)
    return repo
