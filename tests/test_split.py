import numpy as np
import pytest

from handpose.data.layout import pose_id
from handpose.data.split import choose_images, load_split, write_split

from .conftest import data_config
from .test_freihand import zip_folder


def test_choose_images_is_disjoint_by_pose_and_seeded():
    a = choose_images(num_poses=100, num_images=400, n_train=60, n_test=30, seed=3)
    b = choose_images(num_poses=100, num_images=400, n_train=60, n_test=30, seed=3)
    np.testing.assert_array_equal(a["train"], b["train"])
    assert len(a["train"]) == 4 * 60 and len(a["test"]) == 30  # every version of a training pose
    assert not set(a["train"] % 100) & set(a["test"] % 100)
    assert a["train"].max() < 400 and len(set(a["train"] % 100)) == 60
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
        config = data_config(n_synthetic=45, n_train=35, n_test=10)
        write_split(tiny_dataset, out, config, input_size=32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_split_from_the_zip_equals_the_split_from_the_folder(tiny_split, tiny_dataset, tmp_path):
    archive = zip_folder(tiny_dataset, tmp_path / "FreiHAND_pub_v2.zip", "FreiHAND_pub_v2/")
    config = data_config(n_synthetic=40, n_train=24, n_test=8)
    write_split(archive, tmp_path / "split", config, input_size=32, progress=False)
    for name in ("train", "test"):
        zipped, folder = load_split(tmp_path / "split", name), tiny_split[name]
        assert zipped.keys() == folder.keys()
        for key in zipped:
            np.testing.assert_array_equal(zipped[key], folder[key], err_msg=f"{name}.{key}")


def test_the_papers_split_is_the_first_poses_then_the_next():
    chosen = choose_images(num_poses=100, num_images=400, n_train=32, n_test=8, seed=5, how="paper", versions=[0])
    np.testing.assert_array_equal(chosen["train"], np.arange(32))
    np.testing.assert_array_equal(chosen["test"], np.arange(32, 40))


def test_versions_add_every_rendering_of_a_training_pose_and_never_leak_a_test_pose():
    chosen = choose_images(num_poses=100, num_images=400, n_train=30, n_test=10, seed=1, versions=[0, 2])
    train_poses, test_poses = chosen["train"] % 100, chosen["test"] % 100
    assert len(chosen["train"]) == 60 and set(chosen["train"] // 100) == {0, 2}
    assert len(set(train_poses)) == 30 and not set(train_poses) & set(test_poses)
    assert len(chosen["test"]) == 10 and set(chosen["test"] // 100) <= {0, 2}
    every = choose_images(num_poses=100, num_images=400, n_train=30, n_test=10, seed=1)
    assert len(every["train"]) == 120  # all four versions of each training pose


def test_a_version_the_dataset_lacks_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"data\.versions: \[0, 1\], but the dataset has 1 version"):
        choose_images(num_poses=40, num_images=40, n_train=20, n_test=5, seed=0, versions=[0, 1])
