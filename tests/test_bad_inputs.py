"""Every bad input gets one line naming the key or the file, a non-zero exit, and leaves nothing that looks
like a result. Params go through `handpose configure`, data through `handpose split`, and models, splits
and heatmaps through `train`, `evaluate` and `predict`: the commands `dvc repro` runs."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from handpose.cli import main
from handpose.data import layout
from handpose.data.split import choose_images
from handpose.heatmap_targets import write_heatmaps

from .conftest import tiny_config, train_tiny
from .dvc_project import ROOT


def refused(capsys, argv: list[str], named: str) -> str:
    """Run `handpose argv`: exit 2, and one line on stderr that names `named`."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"handpose {argv[0]}: error: ") and "\n" not in err, err
    assert named in err, err
    return err


def left_behind(folder: Path) -> list[str]:
    """Files under `folder` (the outputs of the failed command), temporaries included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---- params.yaml: `handpose configure` (every stage validates the same way) ----------------------------

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
    ("variants.m_new", ["hm", "cosine"], "variants.m_new"),
    ("variants.m_new", [], "variants.m_new"),
    ("variants.../escape", ["hm"], "variants.../escape: not a valid name"),
    ("variant_train.nope", {"batch_size": 4}, "variant_train.nope: no such variant"),
    ("variant_train.m_asm", {"batchsize": 25}, "variant_train.m_asm.batchsize: unknown key"),
    ("trian", {}, "trian: unknown key"),
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


@pytest.mark.parametrize(
    "text, named",
    [(None, "params.yaml: file not found"), ("{}\n", "data: missing"), ("a: [1\n", "params.yaml: not valid YAML")],
)
def test_a_missing_empty_or_broken_params_file_is_refused(text, named, tmp_path, capsys):
    if text is not None:
        (tmp_path / "params.yaml").write_text(text)
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
    ("image missing", lambda root: layout.rgb_path(root, 39).unlink(), "39 images is not a multiple of the 40 poses"),
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


MODEL_CASES = [
    ("garbage", garbage, "not a handpose checkpoint"),
    ("truncated", truncate, "not a handpose checkpoint"),
    ("unfinished", unfinished, "training did not finish (1 of 3 epochs)"),
    ("non-finite", nan_weights, "hold NaN or inf"),
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


def test_predict_refuses_a_missing_image_and_an_impossible_depth(workspace, tmp_path, capsys):
    model = str(workspace / "models" / "seed0.pt")
    out = tmp_path / "joints.json"
    refused(capsys, ["predict", str(tmp_path / "none.jpg"), "--model", model, "--out", str(out)], "none.jpg")
    image = str(layout.rgb_path(ROOT / "tests", 0))  # any path: the depth is checked first
    refused(capsys, ["predict", image, "--model", model, "--root-depth", "0", "--out", str(out)], "--root-depth")
    assert not out.exists()
