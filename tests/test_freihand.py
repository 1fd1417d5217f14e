"""The FreiHAND reader: reads the layout back and names the offending file for every bad input."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from handpose.data import layout
from handpose.data.freihand import FreiHANDError, open_freihand, read_rgb, read_visibility
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
    np.testing.assert_array_equal(ds.xyz, np.array(json.loads((root / layout.XYZ_FILE).read_text()), np.float32))
    assert ds.rgb_path(2) == layout.rgb_path(root, 2)
    assert ds.mask_path(2).is_file()

    rgb = ds.read_rgb(2)
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
    # RGB, not BGR: the decoded JPEG is close to the rendered image and far from its channel swap. At
    # quality 90, JPEG's quantisation leaves a mean error of a few levels (of 255); a wrong image, channel
    # order or offset is tens of levels off.
    original = render_sample(np.random.default_rng([SEED, 2])).rgb.astype(float)
    assert np.abs(rgb - original).mean() < 6
    assert np.abs(rgb - original).mean() < np.abs(rgb - original[..., ::-1]).mean()
    with pytest.raises(IndexError):
        ds.rgb_path(N)


def test_four_images_per_pose(root: Path) -> None:
    for i in range(N, 4 * N):
        shutil.copy(layout.rgb_path(root, i % N), layout.rgb_path(root, i))
    ds = open_freihand(root)
    assert (ds.num_poses, ds.num_images) == (N, 4 * N)
    assert [ds.pose_index(i) for i in (0, 5, 6, 13, 23)] == [0, 5, 0, 1, 5]
    assert ds.mask_path(13) == layout.mask_path(root, 1)
    np.testing.assert_array_equal(ds.read_rgb(13), ds.read_rgb(1))


def test_extra_files_are_ignored(root: Path) -> None:
    (root / "README.txt").write_text("hello")
    (root / "evaluation" / "rgb").mkdir(parents=True)
    (layout.rgb_dir(root) / "notes.txt").write_text("not an image")
    (layout.rgb_dir(root) / "thumbs").mkdir()
    assert open_freihand(root).num_images == N


def test_missing_root(tmp_path: Path) -> None:
    assert "nowhere" in _error(tmp_path / "nowhere")


@pytest.mark.parametrize("name", [layout.XYZ_FILE, layout.K_FILE, layout.SCALE_FILE])
def test_missing_json(root: Path, name: str) -> None:
    (root / name).unlink()
    message = _error(root)
    assert name in message and "missing" in message


def test_invalid_json(root: Path) -> None:
    (root / layout.K_FILE).write_text("[[1, 2,")
    message = _error(root)
    assert layout.K_FILE in message and "JSON" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (layout.XYZ_FILE, np.zeros((N, 20, 3))),
        (layout.XYZ_FILE, np.zeros((N, 21))),
        (layout.K_FILE, np.zeros((N, 3, 4))),
        (layout.SCALE_FILE, np.zeros((N, 2))),
        (layout.SCALE_FILE, np.zeros(0)),
    ],
)
def test_wrong_shape(root: Path, name: str, value: np.ndarray) -> None:
    (root / name).write_text(json.dumps(value.tolist()))
    message = _error(root)
    assert name in message and "shape" in message


def test_ragged_json(root: Path) -> None:
    (root / layout.SCALE_FILE).write_text(json.dumps([0.1, [0.2, 0.3]] + [0.1] * (N - 2)))
    assert layout.SCALE_FILE in _error(root)


def test_length_mismatch(root: Path) -> None:
    scale = json.loads((root / layout.SCALE_FILE).read_text())
    (root / layout.SCALE_FILE).write_text(json.dumps(scale[:-1]))
    message = _error(root)
    assert layout.SCALE_FILE in message and f"{N - 1}" in message


def test_non_finite(root: Path) -> None:
    xyz = json.loads((root / layout.XYZ_FILE).read_text())
    xyz[4][7][1] = float("nan")
    (root / layout.XYZ_FILE).write_text(json.dumps(xyz))
    message = _error(root)
    assert layout.XYZ_FILE in message and "non-finite" in message and "entry 4" in message


def test_missing_image_folder(root: Path) -> None:
    shutil.rmtree(layout.rgb_dir(root))
    assert "rgb" in _error(root)


def test_empty_image_folder(root: Path) -> None:
    for path in layout.rgb_dir(root).iterdir():
        path.unlink()
    message = _error(root)
    assert "rgb" in message and "no .jpg" in message


def test_image_count_not_multiple_of_poses(root: Path) -> None:
    layout.rgb_path(root, 3).unlink()
    message = _error(root)
    assert "rgb" in message and "not a multiple" in message


def test_unreadable_image(root: Path) -> None:
    layout.rgb_path(root, 4).write_bytes(b"not a jpeg")
    ds = open_freihand(root)  # opening does not decode images
    with pytest.raises(FreiHANDError, match="00000004.jpg"):
        ds.read_rgb(4)


def test_visibility_is_read_where_present_and_checked(tmp_path):
    assert read_visibility(tmp_path) is None
    layout.rgb_dir(tmp_path).mkdir(parents=True)
    layout.rgb_path(tmp_path, 0).write_bytes(b"")  # one image: one row
    (tmp_path / layout.VISIBILITY_FILE).write_text("[[0, 1, 2]]")
    with pytest.raises(FreiHANDError, match=layout.VISIBILITY_FILE):
        read_visibility(tmp_path)
    (tmp_path / layout.VISIBILITY_FILE).write_text(json.dumps([[0] * 20 + [2]]))
    assert read_visibility(tmp_path).tolist() == [[0] * 20 + [2]]


def test_read_rgb_decodes_any_image_file_to_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((5, 7, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    rgb = read_rgb(tmp_path / "blue.png")
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert rgb[..., 2].min() == 200 and rgb[..., :2].max() == 0
    with pytest.raises(FreiHANDError, match="nowhere.png"):
        read_rgb(tmp_path / "nowhere.png")


def zip_folder(folder: Path, archive: Path, top: str) -> Path:
    """`folder` zipped as the official archive is: every file under one top-level folder `top`."""
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, f"{top}{path.relative_to(folder)}")
    return archive


@pytest.mark.parametrize("top", ["FreiHAND_pub_v2/", ""])
def test_a_zip_is_read_in_place_like_the_folder(pristine: Path, tmp_path: Path, top: str) -> None:
    archive = zip_folder(pristine, tmp_path / "FreiHAND_pub_v2.zip", top)
    folder, zipped = open_freihand(pristine), open_freihand(archive)
    assert zipped.num_images == folder.num_images == N
    for name in ("xyz", "K", "scale"):
        np.testing.assert_array_equal(getattr(zipped, name), getattr(folder, name))
    for i in range(N):
        assert np.array_equal(zipped.read_rgb(i), folder.read_rgb(i))
    assert str(zipped.rgb_path(2)).endswith(f"FreiHAND_pub_v2.zip/{top}training/rgb/00000002.jpg")
    np.testing.assert_array_equal(read_visibility(archive), read_visibility(pristine))
    assert list(tmp_path.iterdir()) == [archive]  # nothing extracted


def test_a_folder_with_one_top_level_folder_inside_is_read(pristine: Path, tmp_path: Path) -> None:
    shutil.copytree(pristine, tmp_path / "download" / "FreiHAND_pub_v2")
    assert open_freihand(tmp_path / "download").num_images == N


def test_a_truncated_zip_is_refused_naming_it(pristine: Path, tmp_path: Path) -> None:
    archive = zip_folder(pristine, tmp_path / "FreiHAND_pub_v2.zip", "FreiHAND_pub_v2/")
    archive.write_bytes(archive.read_bytes()[:5000])
    assert _error(archive).startswith(f"{archive}: not a zip archive of FreiHAND")


def test_a_corrupt_member_is_refused_naming_it(pristine: Path, tmp_path: Path) -> None:
    archive = zip_folder(pristine, tmp_path / "a.zip", "")
    data = bytearray(archive.read_bytes())
    member = zipfile.ZipFile(archive).getinfo("training/rgb/00000001.jpg")
    start = member.header_offset + 30 + len(member.filename) + 200
    data[start : start + 50] = bytes(50)  # damage the stored bytes: the CRC no longer matches
    archive.write_bytes(bytes(data))
    with pytest.raises(FreiHANDError, match=r"a\.zip/training/rgb/00000001\.jpg: unreadable \(Bad CRC-32"):
        open_freihand(archive).read_rgb(1)
