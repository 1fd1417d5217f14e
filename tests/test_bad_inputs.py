"""Every bad input gets one line naming the key or the file, a non-zero exit, and leaves nothing that looks
like a result. Params go through `handpose configure`, data through `handpose split`, and models, splits
and heatmaps through `train`, `evaluate` and `predict`: the commands `dvc repro` runs."""

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from handpose.atomic import allocated_npy, temporary, write_json
from handpose.cli import main
from handpose.config import memory_needed, validate
from handpose.data import freihand, layout
from handpose.data import split as split_module
from handpose.data.split import choose_images
from handpose.data.synthetic.arrays import render_arrays
from handpose.heatmap_targets import write_heatmaps
from handpose.inference import infer

from .conftest import tiny_config, train_tiny
from .dvc_project import ROOT
from .http_server import Server
from .test_freihand import zip_folder

# The warnings Python does not show a user by default; any other would print before the one-line error.
DEFAULT_IGNORED = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def refused(capsys, argv: list[str], named: str) -> str:
    """Run `handpose argv`: exit 2, and one line on stderr that names `named`, with no warning before it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for hidden in DEFAULT_IGNORED:
            warnings.simplefilter("ignore", hidden)
        assert main(argv) == 2
    assert not caught, [str(w.message) for w in caught]
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"handpose {argv[0]}: error: ") and "\n" not in err, err
    assert named in err, err
    return err


def left_behind(folder: Path) -> list[str]:
    """Files under `folder` (the outputs of the failed command), temporaries included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---- params.yaml: `handpose configure` ------------------------------------------------------------------
# Every stage validates the schema the same way; loss-term names (`loss.coss`) are checked by `configure`
# alone (configure.check_terms), so these cases run that stage.

PARAM_CASES = [  # (dotted key, value; None deletes the key), and what the message must name
    ("loss.coss", 5, "loss.coss: unknown key"),
    ("loss.cos", "ten", "loss.cos"),
    ("loss.cos", True, "loss.cos"),
    ("loss.pose", -1, "loss.pose"),
    ("loss.pose", 1e30, "loss.pose"),
    ("train.lr", 0, "train.lr"),
    ("train.lr", "fast", "train.lr"),
    ("train.epochs", None, "train.epochs: missing"),
    ("train.epochs", 0, "train.epochs"),
    ("train.batch_size", 1, "train.batch_size"),
    ("train.seed", [0, "2"], "train.seed[1]"),
    ("train.seed", [1, 1], "train.seed"),
    ("train.device", "tpu", "train.device"),
    ("train.threads", -1, "train.threads"),
    ("model.input_size", 12, "model.input_size"),
    ("model.input_size", 66, "model.input_size: must be a multiple of 4"),
    ("model.features", 64, "model.features: unknown key"),
    ("model.hourglass", {"features": 2, "stacks": 2, "depth": 4}, "model.hourglass.features"),
    ("model.backbone", "resnet", "model.backbone: no module 'resnet'"),
    ("loss.tip", 1.0, "loss.tip: unknown key"),
    ("model.uv", "argmin", "model.uv"),
    ("model.dropout", [0.3, 1.5], "model.dropout[1]"),
    ("heatmap.sigma", 1e-30, "heatmap.sigma"),
    ("asm.schedule", [-1], "asm.schedule[0]"),
    ("asm.schedule", [], "asm.schedule"),
    ("asm.k", 0, "asm.k"),
    ("data.source", "kaggle", "data.source"),
    ("data.split", "papr", "data.split"),
    ("data.versions", [-1], "data.versions[0]"),
    ("data.versions", "some", "data.versions"),
    ("data.n_train", 10**6, "data.n_train + data.n_test"),
    ("data.n_synthetic", 10**12, "data.n_synthetic: 1000000000000 would need"),
    ("data.n_train", "most", "data.n_train"),
    ("data.test_on", "kaggle", "data.test_on"),
    ("data.synthetic_versions", 0, "data.synthetic_versions"),
    ("train.nproc", 0, "train.nproc"),
    ("train.nproc", 3, "train.nproc: 3 processes cannot share"),
    ("pretrain.seed", 0, "pretrain.seed: must differ from data.seed"),
    ("pretrain.batch_size", 1, "pretrain.batch_size"),
    ("pretrain.n_hands", -5, "pretrain.n_hands"),
    ("pretrain.average_from", 1.5, "pretrain.average_from"),
    ("variants.m_new", ["hm", "cosine"], "variants.m_new"),
    ("variants.m_new", [], "variants.m_new"),
    ("variants.../escape", ["hm"], "variants.../escape: not a valid name"),
    ("variant_train.nope", {"batch_size": 4}, "variant_train.nope: no such variant"),
    ("variant_train.m_asm", {"batchsize": 25}, "variant_train.m_asm.batchsize: unknown key"),
    ("trian", {}, "trian: unknown key"),
    # Values the schema's types allow but that mean nothing (issue #21).
    ("train.lr_drop_at", -3, "train.lr_drop_at"),
    ("train.lr_drop_at", 1.5, "train.lr_drop_at"),
    ("train.backbone_lr_factor", -0.1, "train.backbone_lr_factor"),
    ("data.versions", [0, 0], "data.versions: a version listed twice"),
    ("pretrain.n_hands", 5, "pretrain.n_hands: 5 hands make no batch of pretrain.batch_size = 8"),
    ("heatmap.sigma", 1e6, "heatmap.sigma: 1000000.0 cells is too wide for 24x24 heatmaps"),
    ("evaluate.zooms", [1, 0], "evaluate.zooms[1]"),
    ("evaluate.rolls", [], "evaluate.rolls"),
    ("evaluate.rolls", [360], "evaluate.rolls[0]"),
    ("data.freihand_sha256", "abc", "data.freihand_sha256"),
    ("data.freihand_versions", 0, "data.freihand_versions"),
    ("variants.m_" + "x" * 298, ["hm", "pose"], "variants.m_xxxx"),
    ("loss.c" + "o" * 80, 1.0, "loss.c"),
]


def edited(raw: dict, key: str, value) -> dict:
    section, _, name = key.partition(".")  # a variant name may hold dots: split once
    target = raw.setdefault(section, {}) if name else raw
    if value is None:
        target.pop(name or section)
    else:
        target[name or section] = value
    return raw


@pytest.mark.parametrize("key, value, named", PARAM_CASES, ids=[f"{k}={v!r}"[:40] for k, v, _ in PARAM_CASES])
def test_a_bad_param_is_refused_naming_the_key(key, value, named, tmp_path, capsys):
    raw = edited(yaml.safe_load((ROOT / "params.yaml").read_text()), key, value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    refused(capsys, ["configure", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out")], named)
    assert left_behind(tmp_path / "out") == []


PARAMS_TEXT = (ROOT / "params.yaml").read_text()
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)  # 9 lines, 10^9 values once expanded


@pytest.mark.parametrize(
    "text, named",
    [
        (None, "params.yaml: file not found"),
        ("{}\n", "data: missing"),
        ("a: [1\n", "params.yaml: not valid YAML"),
        (PARAMS_TEXT.replace("  epochs: 6", "  epochs: 6\n  epochs: 9"), "duplicate key 'epochs'"),
        (PARAMS_TEXT + "\ntrain:\n  epochs: 3\n", "duplicate key 'train'"),
        (ALIAS_BOMB, "through its aliases (at most 100,000)"),
        (PARAMS_TEXT + "#" * (1 << 20), "a params file is at most 1,048,576"),
        (PARAMS_TEXT.replace("seed: 0 ", "seed: &s [*s] "), "params.yaml"),  # an alias of itself
        ("train: \xff\xfe\n", "params.yaml"),  # not text
    ],
    ids=["missing", "empty", "broken", "duplicate key", "duplicate section", "alias bomb", "too large", "recursive",
         "not text"],
)  # fmt: skip
def test_a_missing_empty_or_broken_params_file_is_refused(text, named, tmp_path, capsys):
    if text is not None:
        (tmp_path / "params.yaml").write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    refused(capsys, ["configure", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out")], named)
    assert left_behind(tmp_path / "out") == []


# ---- data: `handpose split` reads the FreiHAND layout and checks it on read ----------------------------

FIRST_TRAIN_IMAGE = int(choose_images(40, 40, 24, 8, seed=0)["train"][0])  # the tiny params below


def rewrite_json(name: str, change):
    def corrupt(root: Path) -> None:
        values = json.loads((root / name).read_text())
        change(values)
        (root / name).write_text(json.dumps(values))

    return corrupt


def truncate_image(root: Path) -> None:
    path = layout.rgb_path(root, FIRST_TRAIN_IMAGE)
    path.write_bytes(path.read_bytes()[:2000])


def resize_image(root: Path) -> None:
    path = layout.rgb_path(root, FIRST_TRAIN_IMAGE)
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (200, 200)))


def garbage_image(root: Path) -> None:
    layout.rgb_path(root, FIRST_TRAIN_IMAGE).write_text("not a JPEG")


def set_entry(index: int, value):
    def change(values: list) -> None:
        values[index] = value

    return change


def halve_labels(root: Path) -> None:
    for name in (layout.XYZ_FILE, layout.K_FILE, layout.SCALE_FILE):
        values = json.loads((root / name).read_text())
        (root / name).write_text(json.dumps(values[: len(values) // 2]))


DATA_CASES = [  # (what is wrong, how, what the message must name)
    ("missing root", lambda root: shutil.rmtree(root), "dataset root missing"),
    ("missing xyz", lambda root: (root / layout.XYZ_FILE).unlink(), f"{layout.XYZ_FILE}: file missing"),
    ("broken K json", lambda root: (root / layout.K_FILE).write_text("[[1, 2"), f"{layout.K_FILE}: not valid JSON"),
    ("counts differ", rewrite_json(layout.SCALE_FILE, lambda v: v.pop()), "pose counts differ"),
    ("NaN xyz", rewrite_json(layout.XYZ_FILE, lambda v: v[3][4].__setitem__(0, float("nan"))), "entry 3"),
    (
        "zero scale",
        rewrite_json(layout.SCALE_FILE, set_entry(5, 0.0)),
        f"{layout.SCALE_FILE}: entry 5 has a scale <= 0",
    ),
    ("negative scale", rewrite_json(layout.SCALE_FILE, set_entry(6, -0.03)), f"{layout.SCALE_FILE}: entry 6"),
    (
        "zero depth",
        rewrite_json(layout.XYZ_FILE, lambda v: v[7][2].__setitem__(2, 0.0)),
        "entry 7 has a joint at depth",
    ),
    (
        "singular K",
        rewrite_json(layout.K_FILE, set_entry(2, [[0.0] * 3] * 3)),
        f"{layout.K_FILE}: entry 2 has a singular K",
    ),
    ("truncated JPEG", truncate_image, f"{FIRST_TRAIN_IMAGE:08d}.jpg: truncated JPEG"),
    ("not 224 px", resize_image, f"{FIRST_TRAIN_IMAGE:08d}.jpg: 200x200 image, expected 224x224"),
    ("not an image", garbage_image, f"{FIRST_TRAIN_IMAGE:08d}.jpg"),
    (
        "image missing",
        lambda root: layout.rgb_path(root, 39).unlink(),
        "39 images, but the 40 poses of training_xyz.json at 1 image(s) each make 40",
    ),  # Labels for half the poses beside all the images would read as two versions of each (issue #21).
    ("labels for half", halve_labels, "40 images, but the 20 poses of training_xyz.json at 1 image(s) each make 20"),
    (
        "visibility 7",
        rewrite_json(layout.VISIBILITY_FILE, lambda v: v[3].__setitem__(5, 7)),
        "entry 3, joint 5: unknown code 7",
    ),
    ("visibility 300", rewrite_json(layout.VISIBILITY_FILE, lambda v: v[0].__setitem__(0, 300)), "unknown code 300"),
    ("visibility 1.5", rewrite_json(layout.VISIBILITY_FILE, lambda v: v[2].__setitem__(1, 1.5)), "unknown code 1.5"),
    ("visibility rows", rewrite_json(layout.VISIBILITY_FILE, lambda v: v.pop()), "39 rows, but"),
]


@pytest.fixture
def tiny_params_file(tmp_path) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(n_synthetic=40, n_train=24, n_test=8)
    raw["model"].update(input_size=32, mlp_width=32, hourglass={"features": 16, "stacks": 2, "depth": 4})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path / "params.yaml"


@pytest.mark.parametrize("corrupt, named", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_data_is_refused_naming_the_file_and_sample(
    corrupt, named, tiny_dataset, tiny_params_file, tmp_path, capsys
):
    root = tmp_path / "freihand"
    shutil.copytree(tiny_dataset, root)
    corrupt(root)
    argv = ["split", "--params", str(tiny_params_file), "--dataset", str(root), "--out", str(tmp_path / "split"), "-q"]
    refused(capsys, argv, named)
    assert left_behind(tmp_path / "split") == [] and not list(tmp_path.glob(".split*"))


def test_more_samples_asked_than_the_data_holds(tiny_dataset, tiny_params_file, tmp_path, capsys):
    raw = yaml.safe_load(tiny_params_file.read_text())
    raw["data"].update(n_synthetic=100, n_train=80)  # the dataset on disk has 40 poses
    tiny_params_file.write_text(yaml.safe_dump(raw))
    argv = ["split", "--params", str(tiny_params_file), "--dataset", str(tiny_dataset), "--out", str(tmp_path / "s")]
    refused(capsys, argv, "data.n_train + data.n_test = 88 exceeds the 40 poses")
    assert left_behind(tmp_path / "s") == []


# ---- models, splits and heatmaps: `train`, `evaluate`, `predict` ------------------------------------------


@pytest.fixture(scope="module")
def workspace(tiny_split, tiny_dataset, tmp_path_factory) -> Path:
    """A finished 1-epoch tiny model (models/seed0.pt), its config, heatmaps, a copy of the split, and
    the dataset (freihand/): nothing from the repository's own data/."""
    root = tmp_path_factory.mktemp("work")
    (root / "freihand").symlink_to(tiny_dataset, target_is_directory=True)
    config = tiny_config("m_cos_2", epochs=1)
    (root / "m_cos_2.json").write_text(json.dumps(config.model_dump()))
    shutil.copytree(tiny_split["dir"], root / "split")
    write_heatmaps(tiny_split["train"], root / "heatmaps", size=8, sigma=1.0)
    train_tiny(config, tiny_split, root / "models" / "seed0.pt", progress=False)
    return root


def train_argv(work: Path, out: Path, **changes: str) -> list[str]:
    args = {"config": work / "m_cos_2.json", "split": work / "split", "heatmaps": work / "heatmaps", **changes}
    argv = ["train", *(x for key, value in args.items() for x in (f"--{key}", str(value)))]
    argv += ["--models", str(out / "models"), "--live", str(out / "live"), "--timings", str(out / "t.json")]
    return [*argv, "--quiet"]


def evaluate_argv(work: Path, out: Path, models: Path, split: Path | None = None) -> list[str]:
    argv = ["evaluate", "--models", str(models), "--split", str(split or work / "split"), "--dataset"]
    argv += [str(work / "freihand"), "--metrics"]
    return [*argv, str(out / "m.json"), "--predictions", str(out / "p.npz"), "--timings", str(out / "t.json")]


def copy_of(path: Path, tmp_path: Path, change) -> Path:
    target = tmp_path / "in" / path.relative_to(path.parents[1])
    shutil.copytree(path.parent, target.parent)
    change(target)
    return target


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def test_train_refuses_heatmaps_of_another_split(workspace, tmp_path, capsys):
    other = tmp_path / "hm"
    other.mkdir()
    np.save(other / "train.npy", np.zeros((5, 21, 8, 8), np.float16))
    refused(capsys, train_argv(workspace, tmp_path / "out", heatmaps=other), "train.npy: shape (5, 21, 8, 8)")
    assert left_behind(tmp_path / "out") == []


def test_train_refuses_heatmaps_of_another_size(workspace, tmp_path, capsys):
    other = tmp_path / "hm"
    write_heatmaps(np.load(workspace / "split" / "train.npz"), other, size=16, sigma=1.0)
    refused(capsys, train_argv(workspace, tmp_path / "out", heatmaps=other), "the model 21 x 8 x 8 heatmaps")
    assert left_behind(tmp_path / "out") == []


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("part", ["{}.npz", "{}_images.npy"])  # the labels, the memory-mapped images
def test_a_truncated_split_is_refused_naming_it(command, part, workspace, tmp_path, capsys):
    split, out = tmp_path / "split", tmp_path / "out"
    shutil.copytree(workspace / "split", split)
    for name in ("train", "test"):
        truncate(split / part.format(name))
    if command == "train":
        argv = train_argv(workspace, out, split=split)
    else:
        argv = evaluate_argv(workspace, out, workspace / "models", split)
    refused(capsys, argv, f"{split}/")
    assert left_behind(out) == []


def test_a_missing_split_is_refused_naming_it(workspace, tmp_path, capsys):
    out = tmp_path / "out"
    refused(capsys, evaluate_argv(workspace, out, workspace / "models", tmp_path / "nowhere"), "nowhere/test.npz")
    assert left_behind(out) == []


def test_a_garbage_variant_config_is_refused_naming_it(workspace, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    refused(capsys, train_argv(workspace, tmp_path / "out", config=tmp_path / "bad.json"), "bad.json")
    assert left_behind(tmp_path / "out") == []


def test_pretrained_weights_that_are_no_checkpoint_are_refused(workspace, tmp_path, capsys):
    (tmp_path / "pretrain.pt").write_bytes(b"\x00garbage" * 100)
    refused(capsys, train_argv(workspace, tmp_path / "out", pretrained=tmp_path / "pretrain.pt"), "pretrain.pt")
    assert left_behind(tmp_path / "out") == []


def test_a_diverging_run_is_refused_and_leaves_no_result(workspace, tmp_path, capsys):
    config = json.loads((workspace / "m_cos_2.json").read_text())
    config["train"]["lr"] = 1e6
    (tmp_path / "m_cos_2.json").write_text(json.dumps(config))
    refused(capsys, train_argv(workspace, tmp_path / "out", config=tmp_path / "m_cos_2.json"), "training diverged")
    assert [f for f in left_behind(tmp_path / "out") if not f.endswith(".pt")] == []  # no log: nothing finished


def garbage(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04 not really a zip" * 50)


def unfinished(path: Path) -> None:
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config"]["train"]["epochs"] = 3
    torch.save(checkpoint, path)


def nan_weights(path: Path) -> None:
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"]["mlp.0.weight"].fill_(float("inf"))
    torch.save(checkpoint, path)


def edit_checkpoint(change):
    def edit(path: Path) -> None:
        checkpoint = torch.load(path, weights_only=True)
        change(checkpoint)
        torch.save(checkpoint, path)

    return edit


def scale_weights(checkpoint: dict) -> None:
    for value in checkpoint["model"].values():
        if value.is_floating_point():
            value.mul_(1e30)  # still finite (float32 reaches 3e38): the outputs are not


MODEL_CASES = [
    ("garbage", garbage, "not a handpose checkpoint"),
    ("truncated", truncate, "not a handpose checkpoint"),
    ("unfinished", unfinished, "training did not finish (1 of 3 epochs)"),
    ("non-finite", nan_weights, "hold NaN or inf"),
    # Safe to load, but not sane (issue #21).
    ("empty log", edit_checkpoint(lambda c: c.update(log=[])), "log: List should have at least 1 item"),
    (
        "log column",
        edit_checkpoint(lambda c: c["log"][0].pop("test_pose_error_mm")),
        "log[0].test_pose_error_mm: missing",
    ),
    ("NaN in log", edit_checkpoint(lambda c: c["log"][0].update(loss=float("nan"))), "log[0].loss"),
    ("log epochs", edit_checkpoint(lambda c: c["log"][0].update(epoch=4)), "its log has epochs [4], not 1 to 1"),
    ("image_size 0", edit_checkpoint(lambda c: c.update(image_size=0)), "image_size: Input should be greater"),
    ("no config", edit_checkpoint(lambda c: c.pop("config")), "config: missing"),
    ("weights x 1e30", edit_checkpoint(scale_weights), "predicts non-finite or absurd joints for"),
]


@pytest.mark.parametrize("change, named", [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_evaluate_and_predict_refuse_a_bad_checkpoint_naming_it(
    change, named, workspace, tiny_dataset, tmp_path, capsys
):
    model = copy_of(workspace / "models" / "seed0.pt", tmp_path, change)
    out = tmp_path / "out"
    assert named in refused(capsys, evaluate_argv(workspace, out, model.parent), "seed0.pt: ")
    image = str(layout.rgb_path(tiny_dataset, 0))
    refused(capsys, ["predict", image, "--model", str(model), "--out", str(out / "joints.json")], "seed0.pt: ")
    assert left_behind(out) == []


class FarOff(torch.nn.Module):
    """Predicts finite joints 1e30 m away, as a model with huge weights may on a CPU without overflow."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, image, K, root_depth, scale):
        far = torch.full((len(image), 21, 3), 1e30) * self.weight
        return {"xyz": far, "uv": far[..., :2]}


def test_finite_but_absurd_joints_are_refused_before_any_metric_overflows():
    split = {"images": np.zeros((3, 16, 16, 3), np.uint8), "K": np.tile(np.eye(3, dtype=np.float32), (3, 1, 1))}
    split |= {"xyz": np.ones((3, 21, 3), np.float32), "scale": np.ones(3, np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match="non-finite or absurd joints for 3 of 3 images"):
            infer(FarOff(), split)


def test_predict_refuses_a_missing_image_and_an_impossible_depth(workspace, tmp_path, capsys):
    model = str(workspace / "models" / "seed0.pt")
    out = tmp_path / "joints.json"
    refused(capsys, ["predict", str(tmp_path / "none.jpg"), "--model", model, "--out", str(out)], "none.jpg")
    image = str(layout.rgb_path(ROOT / "tests", 0))  # any path: the depth is checked first
    refused(capsys, ["predict", image, "--model", model, "--root-depth", "0", "--out", str(out)], "--root-depth")
    assert not out.exists()


def test_train_refuses_to_resume_from_a_checkpoint_that_is_not_sane(workspace, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "models").mkdir(parents=True)
    shutil.copy(workspace / "models" / "seed0.pt", out / "models" / "seed0.pt")
    edit_checkpoint(lambda c: c.update(log=[]))(out / "models" / "seed0.pt")
    refused(capsys, [*train_argv(workspace, out), "--resume"], "seed0.pt: not a handpose checkpoint: log")
    assert left_behind(out) == ["models/seed0.pt"]  # the user's file, untouched; nothing new


# ---- downloads and the data stage (issue #21) ------------------------------------------------------------


def download_argv(server: Server, target: Path, *more: str) -> list[str]:
    return ["download", server.url, "--out", str(target), "-q", *more]


def test_a_download_whose_size_nobody_states_is_refused(server, tmp_path, capsys):
    server.length, server.cut_after = False, 300_000  # closes early, and nothing says it was early
    refused(capsys, download_argv(server, tmp_path / "a.zip"), "the server does not say the file's size")
    assert left_behind(tmp_path) == []
    server.cut_after = 300_000  # with the size given, the cut is told
    refused(capsys, download_argv(server, tmp_path / "a.zip", "--size", str(len(server.payload))), "got 300,000 of")
    assert "a.zip" not in left_behind(tmp_path)


def test_a_web_page_served_for_the_file_is_refused(server, tmp_path, capsys):
    server.content_type = "text/html; charset=utf-8"  # a login or error page with status 200
    refused(capsys, download_argv(server, tmp_path / "a.zip"), "the server sent a web page")
    assert left_behind(tmp_path) == []


def test_a_resume_after_the_file_changed_starts_over_instead_of_splicing(server, tmp_path):
    server.cut_after = 300_000
    assert main(download_argv(server, tmp_path / "a.zip")) == 2
    server.payload = bytes(reversed(server.payload))  # a new version, of the same size
    assert main(download_argv(server, tmp_path / "a.zip")) == 0
    assert (tmp_path / "a.zip").read_bytes() == server.payload and left_behind(tmp_path) == ["a.zip"]
    assert server.ranges == [None, "bytes=300000-"]  # it asked to resume; If-Range made the server send all


def test_a_transfer_with_no_validator_is_never_resumed(server, tmp_path, capsys):
    server.etag, server.cut_after = False, 300_000
    refused(capsys, download_argv(server, tmp_path / "a.zip"), "the server names no version to resume")
    assert left_behind(tmp_path) == []


def freihand_params(tmp_path: Path, **data) -> list[str]:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(source="freihand", freihand_versions=1, n_train=24, n_test=8, **data)
    raw["model"].update(input_size=32)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return ["--params", str(tmp_path / "params.yaml")]


def corrupt_member(archive: Path) -> Path:
    """Flip a byte inside the first image's stored data: the zip still opens, its CRC no longer matches."""
    with zipfile.ZipFile(archive) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(".jpg"))
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 100] ^= 0xFF
    archive.write_bytes(bytes(data))
    return archive


@pytest.mark.parametrize(
    "served, sha, named",
    [
        ("junk", None, "not a zip archive"),
        ("corrupt", None, "is corrupt (its CRC does not match)"),
        ("zip", "0" * 64, "SHA-256 mismatch"),
    ],
    ids=["junk", "bad CRC", "wrong SHA-256"],
)
def test_the_data_stage_keeps_no_download_that_is_not_freihand(
    served, sha, named, tiny_dataset, server, tmp_path, capsys
):
    archive = zip_folder(tiny_dataset, tmp_path / "served.zip", "FreiHAND_pub_v2/")
    if served == "junk":
        server.payload = b"PK\x03\x04" + os.urandom(5000)
    else:
        server.payload = (corrupt_member(archive) if served == "corrupt" else archive).read_bytes()
    raw = tmp_path / "raw"
    params = freihand_params(tmp_path, freihand_path=str(raw / "F.zip"), freihand_url=server.url, freihand_sha256=sha)
    err = refused(capsys, ["data", *params, "--out", str(tmp_path / "dataset"), "-q"], named)
    assert ".tmp" not in err and server.url in err  # names the address, never a temporary
    assert left_behind(raw) == [] and not (tmp_path / "dataset").exists()


def test_the_data_stage_refuses_an_archive_that_does_not_match_its_sha256(tiny_dataset, tmp_path, capsys):
    archive = zip_folder(tiny_dataset, tmp_path / "F.zip", "FreiHAND_pub_v2/")
    right = hashlib.sha256(archive.read_bytes()).hexdigest()
    for sha, code in ((right, 0), ("f" * 64, 2)):
        params = freihand_params(tmp_path, freihand_path=str(archive), freihand_sha256=sha)
        assert main(["data", *params, "--out", str(tmp_path / "dataset"), "-q"]) == code
    assert "data.freihand_path: " in capsys.readouterr().err


# ---- disks: a full disk is a one-line refusal that keeps nothing (issue #21) ----------------------------

FILE_LIMIT = 20_000  # bytes: any file above it is refused by the kernel, as a full disk would refuse it


def limited(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`handpose argv` in a process whose files cannot grow past FILE_LIMIT (RLIMIT_FSIZE; SIGXFSZ
    ignored, so a write gets EFBIG, the way a full disk gives ENOSPC)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "handpose", *argv], cwd=cwd, env=env, preexec_fn=limit, capture_output=True, text=True
    )


def test_the_split_and_heatmaps_stages_refuse_a_full_disk_and_keep_nothing(
    tiny_dataset, tiny_params_file, workspace, tmp_path
):
    split = ["split", "--params", str(tiny_params_file), "--dataset", str(tiny_dataset), "--out", "split", "-q"]
    heatmaps = ["heatmaps", "--params", str(tiny_params_file), "--split", str(workspace / "split"), "--out", "hm"]
    for argv, out in ((split, "split"), (heatmaps, "hm")):
        result = limited([*argv, "-q"] if argv[0] == "heatmaps" else argv, tmp_path)
        err = result.stderr.strip()
        assert result.returncode == 2 and err.startswith(f"handpose {argv[0]}: error: ") and "\n" not in err, err
        assert "File too large; nothing was kept" in err and ".tmp" not in err, err
        assert left_behind(tmp_path / out) == [] and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_split_names_the_disk_space_in_units_that_show_it(
    tiny_dataset, tiny_params_file, tmp_path, capsys, monkeypatch
):
    # A small split on a nearly full disk: both figures readable, not rounded to "0.0 GB".
    monkeypatch.setattr(split_module.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10**9, 10**9, 1234))
    argv = ["split", "--params", str(tiny_params_file), "--dataset", str(tiny_dataset), "--out", str(tmp_path / "s")]
    err = refused(capsys, [*argv, "-q"], "data.n_train: ")
    sizes = re.search(r"need (\S+) (\S+) in .*; (\S+) (\S+) are free", err)
    assert sizes and sizes.groups()[2:] == ("1.23", "kB") and float(sizes[1]) >= 1 and sizes[2] in ("kB", "MB"), err
    assert left_behind(tmp_path / "s") == []


def test_an_npy_written_through_a_memory_map_is_allocated_before_any_row(tmp_path):
    array = allocated_npy(tmp_path / "a.npy", np.uint8, (64, 96, 96, 3))
    stat = os.stat(tmp_path / "a.npy")
    # A sparse file would hold ~0 blocks here, and a full disk would kill the first write with SIGBUS.
    assert stat.st_blocks * 512 >= stat.st_size >= array.nbytes
    del array


def test_evaluate_keeps_no_metrics_when_its_predictions_hit_a_full_disk(workspace, tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    out = tmp_path / "out"
    refused(capsys, evaluate_argv(workspace, out, workspace / "models"), f"{out / 'p.npz'}: No space left on device")
    assert left_behind(out) == []  # not even the metrics, which were complete


# ---- interrupted stages: a temporary left by SIGKILL is never hashed by DVC (issue #21) ------------------


@pytest.mark.parametrize("output", ["predictions/m_cos_2.npz", "models/m_cos_2/seed0.pt", "data/split"])
def test_a_temporary_left_in_an_output_folder_is_ignored_by_dvc_and_git(output):
    stale = str(temporary(output))
    dvc = subprocess.run([sys.executable, "-m", "dvc", "check-ignore", "-q", stale], cwd=ROOT)
    git = subprocess.run(["git", "check-ignore", "-q", stale], cwd=ROOT)
    assert dvc.returncode == 0 and git.returncode == 0, stale


# ---- numbers that are not JSON (issue #21) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--scale", "nan"], "--scale: must be a finite length > 0"),
        (["--root-depth", "inf"], "--root-depth: must be a finite length > 0"),
        (["--K", "0", "480", "112", "112"], "--K: fx and fy must be non-zero"),
        (["--K", "480", "480", "nan", "112"], "--K: fx and fy must be non-zero and all four finite"),
    ],
)
def test_predict_refuses_arguments_that_give_no_finite_result(flags, named, workspace, tiny_dataset, tmp_path, capsys):
    image, out = str(layout.rgb_path(tiny_dataset, 0)), tmp_path / "joints.json"
    refused(
        capsys, ["predict", image, "--model", str(workspace / "models" / "seed0.pt"), "--out", str(out), *flags], named
    )
    assert not out.exists()


def test_a_non_finite_result_is_refused_naming_its_key_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"m.json: per_finger_mm\.thumb\[1\] is inf, not a finite number"):
        write_json(tmp_path / "m.json", {"pose_error_mm": 1.0, "per_finger_mm": {"thumb": [2.0, float("inf")]}})
    assert left_behind(tmp_path) == []


# ---- limits: label files and YAML are bounded; so is memory (issue #21) -----------------------------------


def test_a_labels_file_that_inflates_past_the_limit_is_refused_unread(tiny_dataset, tiny_params_file, tmp_path, capsys):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(tiny_dataset.rglob("*")):
            if path.is_file() and path.name != layout.XYZ_FILE:
                z.write(path, path.relative_to(tiny_dataset))
        with z.open(layout.XYZ_FILE, "w", force_zip64=True) as member:  # valid JSON after the whitespace
            for _ in range(freihand.MAX_LABELS_BYTES >> 20):
                member.write(b" " * (1 << 20))
            member.write((tiny_dataset / layout.XYZ_FILE).read_bytes())
    assert archive.stat().st_size < 2 << 20
    tracemalloc.start()
    argv = ["split", "--params", str(tiny_params_file), "--dataset", str(archive), "--out", str(tmp_path / "s"), "-q"]
    err = refused(capsys, argv, f"{layout.XYZ_FILE}: 268,")
    assert "more than any labels file" in err and "refused unread" in err
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 << 20 and left_behind(tmp_path / "s") == []


class FakeSample:
    """A rendered sample's arrays without the rendering (whose own temporaries do not grow with n)."""

    rgb = np.full((224, 224, 3), 128, np.uint8)
    xyz = np.ones((21, 3), np.float32)
    K = np.eye(3, dtype=np.float32)


def test_the_memory_check_counts_what_pretraining_really_holds(monkeypatch):
    """The estimate per pretraining hand is at least what rendering them really allocates (tracemalloc,
    which numpy reports to), so that settings it passes do not die in the allocator."""
    monkeypatch.setattr("handpose.data.synthetic.arrays.render_sample", lambda rng: FakeSample)
    peaks = {}
    for n in (1024, 2048):  # both in chunks of 64 (write.render_in_chunks)
        tracemalloc.start()
        render_arrays(n, seed=1, size=32, workers=1, progress=False)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    per_hand = (peaks[2048] - peaks[1024]) / 1024
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["model"]["input_size"], raw["pretrain"]["n_hands"] = 32, 1000
    value, estimate = memory_needed(validate(raw))["pretrain.n_hands"]
    assert per_hand > 32 * 32 * 3  # the measurement sees the images
    # Every byte that grows with the hands is counted; 1% covers the allocator's bookkeeping of the chunks.
    assert estimate / value >= 0.99 * per_hand, (estimate / value, per_hand)


# ---- CLI paths (issue #21) ------------------------------------------------------------------------------


def predict_argv(workspace: Path, images: list[Path], *more: str) -> list[str]:
    return ["predict", *map(str, images), "--model", str(workspace / "models" / "seed0.pt"), *more]


def test_predict_refuses_a_folder_as_out_and_a_file_as_overlay_dir(workspace, tiny_dataset, tmp_path, capsys):
    image = layout.rgb_path(tiny_dataset, 0)
    refused(capsys, predict_argv(workspace, [image], "--out", str(tmp_path)), f"--out {tmp_path}: is a folder")
    (tmp_path / "file").write_text("x")
    refused(capsys, predict_argv(workspace, [image], "--overlay-dir", str(tmp_path / "file")), "is not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_predict_refuses_two_images_that_would_write_one_overlay(workspace, tiny_dataset, tmp_path, capsys):
    first, second = layout.rgb_path(tiny_dataset, 0), tmp_path / "other" / layout.rgb_path(tiny_dataset, 0).name
    second.parent.mkdir()
    shutil.copy(layout.rgb_path(tiny_dataset, 1), second)
    overlays = tmp_path / "overlays"
    refused(capsys, predict_argv(workspace, [first, second], "--overlay-dir", str(overlays)), "would both write")
    assert left_behind(overlays) == []


def test_predict_removes_its_overlays_when_a_later_image_fails(workspace, tiny_dataset, tmp_path, capsys):
    overlays, out = tmp_path / "overlays", tmp_path / "joints.json"
    images = [layout.rgb_path(tiny_dataset, 0), tmp_path / "missing.jpg"]
    more = ["--overlay-dir", str(overlays), "--out", str(out), "--box", "0,0,224,224"]  # a tiny model finds no hand
    refused(capsys, predict_argv(workspace, images, *more), "missing.jpg")
    assert left_behind(overlays) == [] and not out.exists()
