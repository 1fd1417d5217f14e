"""Loading a checkpoint never runs code: a crafted pickle is refused, naming the file, through
`predict`, `evaluate` and training's resume, and its payload never runs."""

import os

import pytest
import torch

from handpose import train as train_module
from handpose.cli import main
from handpose.data import layout
from handpose.evaluate import evaluate

from .conftest import tiny_config, train_tiny


class Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "models" / "seed0.pt"
    path.parent.mkdir()
    torch.save({"model": Payload(marker), "config": {}}, path)
    return path, marker


def test_predict_refuses_a_crafted_checkpoint(crafted, tiny_dataset, capsys):
    path, marker = crafted
    image = layout.rgb_path(tiny_dataset, 0)
    assert main(["predict", str(image), "--model", str(path)]) == 2
    assert str(path) in capsys.readouterr().err and not marker.exists()


def test_evaluate_refuses_a_crafted_checkpoint(crafted, tiny_split, tiny_dataset, tmp_path):
    path, marker = crafted
    with pytest.raises(ValueError, match="seed0.pt"):
        evaluate(path.parent, tiny_split["dir"], tiny_dataset, tmp_path / "m.json", tmp_path / "p.npz", tmp_path / "t")
    assert not marker.exists() and not (tmp_path / "m.json").exists()


def test_resume_refuses_a_crafted_checkpoint(crafted, tiny_split, tmp_path):
    path, marker = crafted
    with pytest.raises(ValueError, match="seed0.pt"):
        train_tiny(tiny_config("m_cos_2", epochs=1), tiny_split, path, resume=True, progress=False)
    assert not marker.exists()


def test_training_refuses_a_crafted_pretrained_file(crafted, tiny_split, tmp_path):
    path, marker = crafted
    with pytest.raises(ValueError, match="seed0.pt"):
        train_module.train_variant(
            tiny_config("m_cos_2", epochs=1),
            tiny_split["dir"],
            tmp_path / "heatmaps-unused",
            tmp_path / "out",
            tmp_path / "live",
            tmp_path / "timings.json",
            progress=False,
            pretrained=path,
        )
    assert not marker.exists()
