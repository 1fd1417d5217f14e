"""Tiny fixtures built in code: a small synthetic FreiHAND-layout dataset and its split, a tiny
variant config, and training on them; and the tiny DVC project that the end-to-end tests share."""

import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from handpose.camera import mirror, project
from handpose.config import DataConfig, VariantConfig, validate
from handpose.configure import variant_config
from handpose.data.freihand import open_freihand
from handpose.data.split import load_split, write_split
from handpose.data.synthetic import write_dataset
from handpose.heatmaps import gaussian_heatmaps
from handpose.train import Splits, train
from handpose.training_log import TrainingLog

from .dvc_project import new_project, run
from .http_server import Server

ROOT = Path(__file__).resolve().parents[1]
TINY_HOURGLASS = {"features": 16, "stacks": 2, "depth": 4}


def tiny_config(variant: str, epochs: int = 2, asm_pca: str = "batch", seed: int | list[int] = 0) -> VariantConfig:
    """One variant of params.yaml at a size that trains in seconds (32 px, 16 features)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["asm"]["pca"] = asm_pca
    raw["model"].update(input_size=32, mlp_width=32, hourglass=TINY_HOURGLASS)
    raw["train"].update(epochs=epochs, batch_size=8, seed=seed)
    return variant_config(validate(raw), variant)


def heatmaps(split: dict) -> np.ndarray:
    """A split's training targets, as the `heatmaps` stage draws them for 32 px inputs."""
    return gaussian_heatmaps(project(split["xyz"], split["K"]), 224, 8, 1.0).astype(np.float16)


def train_tiny(config: VariantConfig, tiny_split: dict, model_path: Path, seed: int = 0, **options):
    """`train.train` on the tiny split; its dvclive curves land beside `model_path` (<stem>.live/, run seed<k>)."""
    data = Splits(tiny_split["train"], heatmaps(tiny_split["train"]), tiny_split["test"])
    live = TrainingLog(live_folder(model_path))
    return train(config, seed, data, model_path, live=live, **options)


def live_folder(model_path: Path) -> Path:
    """Where `train_tiny` logs the run of `model_path`."""
    return Path(model_path).with_suffix(".live")


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path: equal dicts, equal folders."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def data_config(**changes) -> DataConfig:
    """params.yaml's `data:` with `changes`."""
    return DataConfig(**{**yaml.safe_load((ROOT / "params.yaml").read_text())["data"], **changes})


IMAGES = 8  # in a set of labelled photos


def write_labelled_photos(dataset: Path, out: Path, hand: str) -> Path:
    """The first IMAGES images of a synthetic dataset as a user's photos with a labels.json, as
    `handpose convert` takes them; hand "left" flips each photo and mirrors its labels to match."""
    data = open_freihand(dataset)
    out.mkdir(parents=True)
    entries = []
    for i in range(IMAGES):
        rgb, xyz, K = data.read_rgb(i), data.xyz[i], data.K[i]
        if hand == "left":
            rgb, (xyz, K) = rgb[:, ::-1], mirror(xyz, K)
        cv2.imwrite(str(out / f"{i}.png"), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        entries.append({"image": f"{i}.png", "xyz": xyz.tolist(), "K": K.tolist(), "hand": hand})
    (out / "labels.json").write_text(json.dumps(entries))
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "freihand"
    write_dataset(root, n=40, seed=0, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_split(tiny_dataset, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("split") / "split"
    config = data_config(n_synthetic=40, n_train=24, n_test=8)
    write_split(tiny_dataset, out, config, input_size=32, progress=False)
    return {"train": load_split(out, "train"), "test": load_split(out, "test"), "dir": out}


@pytest.fixture
def server():
    """A file server on 127.0.0.1 (tests/http_server.py), for the duration of one test."""
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """This project's pipeline at dvc_project.TINY's size after one `dvc repro`, committed: built once a
    session and shared by every test that only reads it. A test that changes a project (params, code, an
    experiment, a remote) works on `copy_project(tiny_project, ...)`; at the end of the session this one
    must still be exactly as committed, with no experiment, or the sharing was unsafe."""
    repo = new_project(tmp_path_factory.mktemp("tiny_project") / "repo")
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny run"], repo)
    yield repo
    # `dvc plots show` renders its figures into dvc_plots/, which no test reads here.
    changed = run(["git", "status", "--porcelain", "--", ".", ":!dvc_plots"], repo).stdout
    assert changed == "", f"a test changed the shared tiny_project:\n{changed}"
    assert run(["git", "for-each-ref", "refs/exps"], repo).stdout == "", "a test ran an experiment in it"
    assert "up to date" in run(["dvc", "status"], repo).stdout.lower(), "a test changed its DVC outputs"


def copy_project(project: Path, repo: Path) -> Path:
    """A copy of `project` at `repo`: its git history, workspace and DVC cache (a few MB at TINY's size),
    ready to change; DVC's scratch folder (.dvc/tmp: locks, indexes keyed by the original) stays behind."""
    shutil.copytree(project, repo, symlinks=True, ignore=lambda folder, names: _dvc_tmp(project, folder, names))
    return repo


def _dvc_tmp(project: Path, folder: str, names: list[str]) -> list[str]:
    return ["tmp"] if Path(folder) == project / ".dvc" and "tmp" in names else []


@pytest.fixture(scope="session")
def cos_experiment(tiny_project, tmp_path_factory) -> tuple[Path, str]:
    """A copy of tiny_project after `dvc exp run -S loss.cos=5` in its workspace (which retrains the two
    variants that use L_cos), and that command's output: the experiment that test_pipeline checks and
    whose `make compare` table test_pipeline and test_compare read."""
    repo = copy_project(tiny_project, tmp_path_factory.mktemp("cos_experiment") / "repo")
    return repo, run(["dvc", "exp", "run", "-S", "loss.cos=5"], repo).stdout
