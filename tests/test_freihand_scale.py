"""Real FreiHAND's shape at small scale: poses in 4 versions, the evaluation archive beside the training
one, `data.test_on: freihand_eval`, `data.n_train: all`, and memory-mapped splits and heatmaps."""

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from handpose.cli import main
from handpose.data import layout
from handpose.data.freihand import open_freihand, read_rgb, read_visibility
from handpose.data.images import to_input_size
from handpose.data.split import load_split
from handpose.data.synthetic import write_dataset
from handpose.heatmap_targets import load_heatmaps

from .dvc_project import ROOT
from .http_server import Server
from .test_freihand import zip_folder

POSES, VERSIONS, EVAL = 10, 4, 6


@pytest.fixture(scope="module")
def both_parts(tmp_path_factory) -> Path:
    """A synthetic dataset with a training part of POSES x VERSIONS images and an evaluation part."""
    root = tmp_path_factory.mktemp("full") / "freihand"
    write_dataset(root, n=POSES, seed=3, workers=1, progress=False, versions=VERSIONS, n_eval=EVAL)
    return root


@pytest.fixture(scope="module")
def archives(both_parts: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The two official archives: training files under FreiHAND_pub_v2/, the evaluation files at the top."""
    out = tmp_path_factory.mktemp("archives")
    training, evaluation = out / "training", out / "evaluation"
    for folder, part in ((training, layout.TRAINING), (evaluation, layout.EVALUATION)):
        shutil.copytree(both_parts / part, folder / part)
        for kind in ("xyz", "K", "scale"):  # real FreiHAND has no visibility file
            shutil.copy(both_parts / layout.labels_file(kind, part), folder)
    return (
        zip_folder(training, out / "FreiHAND_pub_v2.zip", "FreiHAND_pub_v2/"),
        zip_folder(evaluation, out / "FreiHAND_pub_v2_eval.zip", ""),
    )


def test_versions_show_one_hand_over_new_backgrounds_and_only_the_first_has_masks(both_parts: Path) -> None:
    data = open_freihand(both_parts)
    assert (data.num_poses, data.num_images) == (POSES, POSES * VERSIONS)
    first, third = data.read_rgb(2), data.read_rgb(2 * POSES + 2)  # pose 2, versions 0 and 2
    # A new background and new colours move the mean by tens of levels; JPEG's noise alone, by a few.
    assert np.abs(first.astype(int) - third).mean() > 10
    assert len(list(layout.mask_dir(both_parts).iterdir())) == POSES
    assert read_visibility(both_parts).shape == (POSES * VERSIONS, 21)  # occluders differ per version
    evaluation = open_freihand(both_parts, layout.EVALUATION)
    assert (evaluation.num_poses, evaluation.num_images) == (EVAL, EVAL)
    assert not np.isin(evaluation.xyz, data.xyz).all(axis=(1, 2)).any()  # poses of its own


def test_version_zero_is_the_single_version_dataset(both_parts: Path, tmp_path: Path) -> None:
    write_dataset(tmp_path / "one", n=POSES, seed=3, workers=1, progress=False)
    single = open_freihand(tmp_path / "one")
    np.testing.assert_array_equal(single.xyz, open_freihand(both_parts).xyz)
    assert layout.rgb_path(tmp_path / "one", 4).read_bytes() == layout.rgb_path(both_parts, 4).read_bytes()


def _params(tmp_path: Path, **data) -> list[str]:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(data)
    raw["model"].update(input_size=32, hourglass={"features": 16, "stacks": 2, "depth": 4})
    raw["train"].update(epochs=1, batch_size=4)
    raw["pretrain"].update(n_hands=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return ["--params", str(tmp_path / "params.yaml")]


def _stages(params: list[str], tmp_path: Path, dataset: Path) -> None:
    split, heatmaps = tmp_path / "split", tmp_path / "heatmaps"
    assert main(["split", *params, "--dataset", str(dataset), "--out", str(split), "-q"]) == 0
    assert main(["heatmaps", *params, "--split", str(split), "--out", str(heatmaps), "-q"]) == 0
    assert main(["configure", *params, "--out", str(tmp_path / "configs")]) == 0
    for stage in (
        ["train", "--config", str(tmp_path / "configs" / "m_cos_2.json"), "--split", str(split)]
        + ["--heatmaps", str(heatmaps), "--models", str(tmp_path / "models"), "--live", str(tmp_path / "live")]
        + ["--timings", str(tmp_path / "t.json")],
        ["evaluate", "--models", str(tmp_path / "models"), "--split", str(split), "--dataset", str(dataset)]
        + ["--metrics", str(tmp_path / "m.json"), "--predictions", str(tmp_path / "p.npz")]
        + ["--timings", str(tmp_path / "te.json")],
    ):
        assert main([*stage, "-q"]) == 0


def test_the_evaluation_set_is_the_test_and_every_training_pose_trains(archives, tmp_path: Path) -> None:
    training, evaluation = archives
    params = _params(
        tmp_path,
        source="freihand",
        freihand_versions=VERSIONS,
        freihand_path=str(training),
        freihand_eval_path=str(evaluation),
        test_on="freihand_eval",
        n_train="all",
        n_test=EVAL,
        freihand_url="http://127.0.0.1:9/unused",
        freihand_eval_url="http://127.0.0.1:9/unused",
    )
    assert main(["data", *params, "--out", str(tmp_path / "freihand"), "-q"]) == 0
    links = sorted(p.name for p in (tmp_path / "freihand").iterdir())
    assert links == ["FreiHAND_pub_v2.zip", "FreiHAND_pub_v2_eval.zip"]
    _stages(params, tmp_path, tmp_path / "freihand")
    train, test = load_split(tmp_path / "split", "train"), load_split(tmp_path / "split", "test")
    assert isinstance(train["images"], np.memmap) and not train["images"].flags.writeable
    assert len(train["images"]) == POSES * VERSIONS and str(train["part"]) == layout.TRAINING
    assert str(test["part"]) == layout.EVALUATION
    np.testing.assert_array_equal(test["image_ids"], np.arange(EVAL))
    eval_data = open_freihand(evaluation, layout.EVALUATION)
    np.testing.assert_array_equal(test["xyz"], eval_data.xyz)
    np.testing.assert_array_equal(test["images"][3], to_input_size(read_rgb(eval_data.rgb_path(3)), 32))
    assert isinstance(load_heatmaps(tmp_path / "heatmaps", POSES * VERSIONS, 8), np.memmap)
    assert (tmp_path / "m.json").is_file()


def test_n_train_all_takes_every_pose_the_held_out_test_does_not(both_parts: Path, tmp_path: Path) -> None:
    params = _params(tmp_path, n_synthetic=POSES, n_train="all", n_test=3, synthetic_versions=VERSIONS)
    split = tmp_path / "split"
    assert main(["split", *params, "--dataset", str(both_parts), "--out", str(split), "-q"]) == 0
    train, test = load_split(split, "train"), load_split(split, "test")
    assert len(train["image_ids"]) == (POSES - 3) * VERSIONS and len(test["image_ids"]) == 3
    train_poses, test_poses = set(train["image_ids"] % POSES), set(test["image_ids"] % POSES)
    assert len(train_poses | test_poses) == POSES and not train_poses & test_poses


def test_the_synthetic_data_stage_writes_an_evaluation_part_when_the_test_uses_it(tmp_path: Path) -> None:
    params = _params(tmp_path, n_synthetic=8, n_train=6, n_test=4, test_on="freihand_eval")
    assert main(["data", *params, "--out", str(tmp_path / "freihand"), "-q"]) == 0
    assert open_freihand(tmp_path / "freihand", layout.EVALUATION).num_images == 4
    _stages(params, tmp_path, tmp_path / "freihand")
    assert str(load_split(tmp_path / "split", "test")["part"]) == layout.EVALUATION


def test_the_evaluation_archive_is_downloaded_once_when_missing(archives, tmp_path: Path) -> None:
    training, evaluation = archives
    srv = Server()
    srv.payload = evaluation.read_bytes()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        target = tmp_path / "raw" / "FreiHAND_pub_v2_eval.zip"
        params = _params(
            tmp_path, source="freihand", freihand_versions=VERSIONS, freihand_path=str(training),
            freihand_eval_path=str(target),
            freihand_eval_url=srv.url, test_on="freihand_eval", n_test=EVAL,
        )  # fmt: skip
        for _ in range(2):
            assert main(["data", *params, "--out", str(tmp_path / "freihand"), "-q"]) == 0
        assert len(srv.ranges) == 1 and target.read_bytes() == evaluation.read_bytes()
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"n_test": EVAL + 1}, f"data.n_test = {EVAL + 1} exceeds the {EVAL} images of the evaluation set"),
        ({"n_train": POSES + 1}, f"data.n_train = {POSES + 1} exceeds the {POSES} poses available"),
    ],
)
def test_asking_more_than_the_evaluation_split_holds_names_the_key(both_parts, tmp_path, capsys, data, message):
    params = _params(tmp_path, source="freihand", test_on="freihand_eval", **{"n_train": "all", "n_test": 2, **data})
    assert main(["split", *params, "--dataset", str(both_parts), "--out", str(tmp_path / "split"), "-q"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "split").exists()


def test_a_training_archive_without_the_evaluation_labels_is_refused_naming_it(archives, tmp_path, capsys) -> None:
    training, _ = archives
    params = _params(tmp_path, source="freihand", test_on="freihand_eval", n_test=2)
    assert main(["split", *params, "--dataset", str(training), "--out", str(tmp_path / "split"), "-q"]) == 2
    err = capsys.readouterr().err
    assert str(training) in err and layout.labels_file("xyz", layout.EVALUATION) in err
    assert not (tmp_path / "split").exists()
