"""The FreiHAND v2 layout: real FreiHAND's names, pose ids, and the writer and reader agreeing on every path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handpose.data import layout
from handpose.data.freihand import open_freihand, read_visibility
from handpose.data.synthetic import write_dataset


def test_names_are_freihands() -> None:
    # Real FreiHAND v2's own names: the reader must open the downloaded dataset as it is.
    assert (layout.XYZ_FILE, layout.K_FILE, layout.SCALE_FILE) == (
        "training_xyz.json",
        "training_K.json",
        "training_scale.json",
    )
    assert layout.rgb_path("/d", 7) == Path("/d/training/rgb/00000007.jpg")
    assert layout.mask_path("/d", 130239) == Path("/d/training/mask/00130239.jpg")


def test_pose_id_on_ints_and_arrays() -> None:
    poses = 5
    views, pose = np.meshgrid(np.arange(4), np.arange(poses), indexing="ij")
    image_ids = views * poses + pose  # image v * P + i shows pose i
    np.testing.assert_array_equal(layout.pose_id(image_ids, poses), pose)
    assert layout.pose_id(np.int64(13), poses) == 3
    ids = layout.pose_id(np.array([0, 4, 5, 19], np.int64), poses)
    assert ids.tolist() == [0, 4, 0, 4] and ids.dtype == np.int64
    assert layout.pose_id(23, 6) == 5 and isinstance(layout.pose_id(23, 6), int)


def test_paths_round_trip(tmp_path: Path) -> None:
    ids = [0, 9, 10, 99, 100, 12345678]
    paths = [layout.rgb_path(tmp_path, i) for i in ids]
    assert [int(p.stem) for p in paths] == ids
    assert all(p.parent == layout.rgb_dir(tmp_path) for p in paths)
    assert all(layout.mask_path(tmp_path, i).parent == layout.mask_dir(tmp_path) for i in ids)
    # Zero padding keeps a plain name sort in index order.
    assert sorted(p.name for p in paths) == [p.name for p in paths]


def test_writer_puts_every_file_where_the_reader_looks(tmp_path: Path) -> None:
    n = 3
    root = tmp_path / "ds"
    write_dataset(root, n=n, seed=2, workers=1, progress=False)
    written = {p for p in root.rglob("*") if p.is_file()}
    labels = {root / name for name in (layout.XYZ_FILE, layout.K_FILE, layout.SCALE_FILE, layout.VISIBILITY_FILE)}
    images = {layout.rgb_path(root, i) for i in range(n)} | {layout.mask_path(root, i) for i in range(n)}
    assert written == labels | images

    data = open_freihand(root)
    assert (data.num_poses, data.num_images) == (n, n)
    assert all(data.rgb_path(i) == layout.rgb_path(root, i) for i in range(n))
    assert all(data.mask_path(i) == layout.mask_path(root, data.pose_index(i)) for i in range(n))
    visibility = read_visibility(root)
    assert visibility.shape == (n, 21)
    assert set(np.unique(visibility)) <= set(range(len(layout.VISIBILITY_NAMES)))


def test_visibility_names_are_indexed_by_code() -> None:
    codes = (layout.VISIBLE, layout.SELF_OCCLUDED, layout.OBJECT_OCCLUDED)
    assert [layout.VISIBILITY_NAMES[c] for c in codes] == ["visible", "self_occluded", "object_occluded"]
