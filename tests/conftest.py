"""Tiny fixtures built in code: a small synthetic FreiHAND-layout dataset and its split."""

from pathlib import Path

import pytest
import yaml

from handpose.config import DataConfig
from handpose.data.split import load_split, write_split
from handpose.data.synthetic import write_dataset

ROOT = Path(__file__).resolve().parents[1]


def data_config(**changes) -> DataConfig:
    """params.yaml's `data:` with `changes`."""
    return DataConfig(**{**yaml.safe_load((ROOT / "params.yaml").read_text())["data"], **changes})


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
