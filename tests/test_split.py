import numpy as np
import pytest

from handpose.config import DataConfig
from handpose.data.layout import pose_id
from handpose.data.split import choose_images, write_split


def test_choose_images_is_disjoint_by_pose_and_seeded():
    a = choose_images(num_poses=100, num_images=400, n_train=60, n_test=30, seed=3)
    b = choose_images(num_poses=100, num_images=400, n_train=60, n_test=30, seed=3)
    np.testing.assert_array_equal(a["train"], b["train"])
    assert len(a["train"]) == 60 and len(a["test"]) == 30
    assert not set(a["train"] % 100) & set(a["test"] % 100)
    assert a["train"].max() < 400
    c = choose_images(num_poses=100, num_images=400, n_train=60, n_test=30, seed=4)
    assert not np.array_equal(a["train"], c["train"])


def test_too_many_samples_is_a_clear_error():
    with pytest.raises(ValueError, match="n_train"):
        choose_images(num_poses=10, num_images=10, n_train=8, n_test=5, seed=0)


def test_split_arrays_match_the_dataset(tiny_split, tiny_dataset):
    from handpose.data.freihand import open_freihand

    data = open_freihand(tiny_dataset)
    train = tiny_split["train"]
    assert train["images"].shape == (24, 32, 32, 3) and train["images"].dtype == np.uint8
    assert int(train["image_size"]) == 224
    poses = pose_id(train["image_ids"], data.num_poses)
    np.testing.assert_array_equal(train["xyz"], data.xyz[poses])
    np.testing.assert_array_equal(train["K"], data.K[poses])


def test_failed_split_leaves_nothing(tiny_dataset, tmp_path):
    out = tmp_path / "split"
    with pytest.raises(ValueError):
        config = DataConfig(source="synthetic", n_synthetic=45, n_train=35, n_test=10, seed=0)
        write_split(tiny_dataset, out, config, input_size=32, progress=False)
    assert list(tmp_path.iterdir()) == []
