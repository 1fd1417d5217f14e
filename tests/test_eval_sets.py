"""Extra test sets (params.yaml `eval_sets:`): a converted set is decoded with its left hands mirrored,
every variant is scored on it in each photo's own frame, and bad sets are refused in one line."""

import json
from pathlib import Path

import numpy as np
import pytest

from handpose.camera import mirror_uv
from handpose.cli import main
from handpose.config import EvalSetConfig
from handpose.data.convert import convert
from handpose.data.freihand import FreiHANDError
from handpose.data.split import load_split, write_eval_set
from handpose.evaluate import evaluate

from .conftest import IMAGES, tiny_config, train_tiny, write_labelled_photos


@pytest.fixture(scope="module")
def converted(tiny_dataset, tmp_path_factory) -> dict[str, Path]:
    """The same hands converted twice: as right hands, and as their left-hand mirror images."""
    root = tmp_path_factory.mktemp("sets")
    sets = {}
    for hand in ("right", "left"):
        photos = write_labelled_photos(tiny_dataset, root / f"{hand}_photos", hand)
        convert(photos, photos / "labels.json", root / hand, progress=False)
        sets[hand] = root / hand
    return sets


@pytest.fixture(scope="module")
def tiny_models(tiny_split, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "m_cos_2"
    folder.mkdir()
    train_tiny(tiny_config("m_cos_2", epochs=1), tiny_split, folder / "seed0.pt", progress=False)
    return folder


def score(models: Path, set_path: Path, out: Path) -> tuple[dict, dict]:
    write_eval_set("s", EvalSetConfig(path=str(set_path)), out / "set", input_size=32, progress=False)
    metrics = evaluate(models, out / "set", None, out / "m.json", out / "p.npz", out / "t.json")
    with np.load(out / "p.npz") as f:
        return metrics, {key: f[key] for key in f.files}


def test_a_left_hand_copy_scores_as_its_right_hand_original(converted, tiny_models, tmp_path):
    assert json.loads((converted["left"] / "training_hand.json").read_text()) == ["left"] * IMAGES
    write_eval_set("l", EvalSetConfig(path=str(converted["left"])), tmp_path / "l", 32, progress=False)
    assert load_split(tmp_path / "l", "test")["mirrored"].all()
    right, right_pred = score(tiny_models, converted["right"], tmp_path / "right")
    left, left_pred = score(tiny_models, converted["left"], tmp_path / "left")
    # Both sets hold the same pixels up to a flip, each through its own JPEG encoding (quality 95):
    # a grey level or two of difference moves a tiny model's joints by well under a pixel, though an
    # untrained model's flat heatmaps can tip the odd peak elsewhere.
    shift_px = np.linalg.norm(left_pred["uv"] - mirror_uv(right_pred["uv"]), axis=-1)
    assert (shift_px < 0.5).mean() > 0.95, shift_px
    # So each error may differ by as much as its joints moved (triangle inequality): the mean joint
    # shift, and for root-aligned errors the root's shift too. Mirroring (x -> -x) is an isometry.
    shift_mm = 1000 * np.linalg.norm(left_pred["xyz"] * [-1, 1, 1] - right_pred["xyz"], axis=-1)
    bounds = {
        "pose_error_mm": shift_mm.mean(),
        "mpjpe_mm": shift_mm.mean() + shift_mm[..., 0].mean(),
        "uv_error_px": shift_px.mean(),
    }
    for key, bound in bounds.items():  # + float32's rounding of the means
        assert abs(left[key] - right[key]) <= bound + 1e-5 * abs(right[key]), (key, left[key], right[key], bound)
    # Predictions and labels are in each photo's own frame: the left photo's joints are the mirror images.
    np.testing.assert_allclose(left_pred["true_uv"], mirror_uv(right_pred["true_uv"]), atol=1e-3)
    assert "converged_epoch" not in left and left["test_samples"] == IMAGES


def test_a_declared_hand_overrides_the_sets_own(converted, tiny_models, tmp_path):
    write_eval_set("s", EvalSetConfig(path=str(converted["left"]), hand="right"), tmp_path / "set", 32, progress=False)
    assert not load_split(tmp_path / "set", "test")["mirrored"].any()


def eval_set_command(tmp_path: Path, sets: dict, name: str) -> int:
    params = tmp_path / "params.yaml"
    text = (Path(__file__).resolve().parents[1] / "params.yaml").read_text()
    params.write_text(text.replace("eval_sets: {}", f"eval_sets: {json.dumps(sets)}"))
    return main(["eval-set", "--params", str(params), "--name", name, "--out", str(tmp_path / "out"), "-q"])


@pytest.mark.parametrize(
    "sets, name, message",
    [
        ({"real": {"path": "nowhere"}}, "real", "eval_sets.real.path: nowhere does not exist"),
        ({"real": {"path": "."}}, "other", "eval_sets.other: no such set"),
        ({"real": {"path": ".", "hand": "both"}}, "real", "eval_sets.real.hand"),
        ({"real": {"path": "NOLABELS"}}, "real", "training_xyz.json"),
    ],
)
def test_bad_sets_are_refused_in_one_line_keeping_nothing(tmp_path, capsys, sets, name, message):
    (tmp_path / "nolabels" / "training" / "rgb").mkdir(parents=True)
    sets = json.loads(json.dumps(sets).replace("NOLABELS", str(tmp_path / "nolabels")))
    assert eval_set_command(tmp_path, sets, name) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_convert_refuses_an_unknown_hand(tiny_dataset, tmp_path):
    photos = write_labelled_photos(tiny_dataset, tmp_path / "photos", "right")
    labels = json.loads((photos / "labels.json").read_text())
    labels[3]["hand"] = "Left"
    (photos / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(FreiHANDError, match=r"entry 3: hand must be one of right, left, got 'Left'"):
        convert(photos, photos / "labels.json", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
