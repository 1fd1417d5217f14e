"""The FreiHAND reader: reads the layout back and names the offending file for every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from handpose.data.freihand import FreiHANDError, open_freihand
from handpose.data.synthetic import render_sample, write_dataset

N = 6
SEED = 3


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "freihand"
    write_dataset(root, n=N, seed=SEED, workers=1, progress=False)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    """A private copy each test may damage."""
    return Path(shutil.copytree(pristine, tmp_path / "freihand"))


def _error(root: Path) -> str:
    with pytest.raises(FreiHANDError) as info:
        open_freihand(root)
    return str(info.value)


def test_reads_back(root: Path) -> None:
    ds = open_freihand(str(root))
    assert (ds.num_poses, ds.num_images) == (N, N)
    assert ds.xyz.shape == (N, 21, 3) and ds.K.shape == (N, 3, 3) and ds.scale.shape == (N,)
    assert ds.xyz.dtype == ds.K.dtype == ds.scale.dtype == np.float32
    np.testing.assert_array_equal(ds.xyz, np.array(json.loads((root / "training_xyz.json").read_text()), np.float32))
    assert ds.rgb_path(2) == root / "training" / "rgb" / "00000002.jpg"
    assert ds.mask_path(2).is_file()

    rgb = ds.read_rgb(2)
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
    # RGB, not BGR: the decoded JPEG is close to the rendered image and far from its channel swap.
    original = render_sample(np.random.default_rng([SEED, 2])).rgb.astype(float)
    assert np.abs(rgb - original).mean() < 6
    assert np.abs(rgb - original).mean() < np.abs(rgb - original[..., ::-1]).mean()
    with pytest.raises(IndexError):
        ds.rgb_path(N)


def test_four_images_per_pose(root: Path) -> None:
    rgb = root / "training" / "rgb"
    for i in range(N, 4 * N):
        shutil.copy(rgb / f"{i % N:08d}.jpg", rgb / f"{i:08d}.jpg")
    ds = open_freihand(root)
    assert (ds.num_poses, ds.num_images) == (N, 4 * N)
    assert [ds.pose_index(i) for i in (0, 5, 6, 13, 23)] == [0, 5, 0, 1, 5]
    assert ds.mask_path(13) == root / "training" / "mask" / "00000001.jpg"
    np.testing.assert_array_equal(ds.read_rgb(13), ds.read_rgb(1))


def test_extra_files_are_ignored(root: Path) -> None:
    (root / "README.txt").write_text("hello")
    (root / "evaluation" / "rgb").mkdir(parents=True)
    (root / "training" / "rgb" / "notes.txt").write_text("not an image")
    (root / "training" / "rgb" / "thumbs").mkdir()
    assert open_freihand(root).num_images == N


def test_missing_root(tmp_path: Path) -> None:
    assert "nowhere" in _error(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["training_xyz.json", "training_K.json", "training_scale.json"])
def test_missing_json(root: Path, name: str) -> None:
    (root / name).unlink()
    message = _error(root)
    assert name in message and "missing" in message


def test_invalid_json(root: Path) -> None:
    (root / "training_K.json").write_text("[[1, 2,")
    message = _error(root)
    assert "training_K.json" in message and "JSON" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("training_xyz.json", np.zeros((N, 20, 3))),
        ("training_xyz.json", np.zeros((N, 21))),
        ("training_K.json", np.zeros((N, 3, 4))),
        ("training_scale.json", np.zeros((N, 2))),
        ("training_scale.json", np.zeros(0)),
    ],
)
def test_wrong_shape(root: Path, name: str, value: np.ndarray) -> None:
    (root / name).write_text(json.dumps(value.tolist()))
    message = _error(root)
    assert name in message and "shape" in message


def test_ragged_json(root: Path) -> None:
    (root / "training_scale.json").write_text(json.dumps([0.1, [0.2, 0.3]] + [0.1] * (N - 2)))
    assert "training_scale.json" in _error(root)


def test_length_mismatch(root: Path) -> None:
    scale = json.loads((root / "training_scale.json").read_text())
    (root / "training_scale.json").write_text(json.dumps(scale[:-1]))
    message = _error(root)
    assert "training_scale.json" in message and f"{N - 1}" in message


def test_non_finite(root: Path) -> None:
    xyz = json.loads((root / "training_xyz.json").read_text())
    xyz[4][7][1] = float("nan")
    (root / "training_xyz.json").write_text(json.dumps(xyz))
    message = _error(root)
    assert "training_xyz.json" in message and "non-finite" in message and "entry 4" in message


def test_missing_image_folder(root: Path) -> None:
    shutil.rmtree(root / "training" / "rgb")
    assert "rgb" in _error(root)


def test_empty_image_folder(root: Path) -> None:
    for path in (root / "training" / "rgb").iterdir():
        path.unlink()
    message = _error(root)
    assert "rgb" in message and "no .jpg" in message


def test_image_count_not_multiple_of_poses(root: Path) -> None:
    (root / "training" / "rgb" / "00000003.jpg").unlink()
    message = _error(root)
    assert "rgb" in message and "not a multiple" in message


def test_unreadable_image(root: Path) -> None:
    (root / "training" / "rgb" / "00000004.jpg").write_bytes(b"not a jpeg")
    ds = open_freihand(root)  # opening does not decode images
    with pytest.raises(FreiHANDError, match="00000004.jpg"):
        ds.read_rgb(4)


def test_visibility_is_read_where_present_and_checked(tmp_path):
    from handpose.data.freihand import VISIBILITY_FILE, read_visibility

    assert read_visibility(tmp_path) is None
    (tmp_path / VISIBILITY_FILE).write_text("[[0, 1, 2]]")
    with pytest.raises(FreiHANDError, match=VISIBILITY_FILE):
        read_visibility(tmp_path)
    (tmp_path / VISIBILITY_FILE).write_text(json.dumps([[0] * 20 + [2]]))
    assert read_visibility(tmp_path).tolist() == [[0] * 20 + [2]]
