"""The measured effect of each way the default run differs from the paper: one variant trained with
the default recipe and again with one difference undone, from the pipeline's own split, heatmaps
and pretrained hourglass (run `make repro` first). Prints one JSON line per run, then a summary.

    python benchmarks/paper_differences.py [--only default scratch argmax ...] [--seed 0]

Each run is one seed, so differences within about 1 mm (the spread over seeds, `make study`) are noise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from handpose.camera import project
from handpose.checkpoints import load_pretrained
from handpose.config import load_params, validate
from handpose.configure import variant_config
from handpose.data.split import load_split
from handpose.data.synthetic.arrays import render_arrays
from handpose.device import setup_torch
from handpose.heatmap_targets import load_heatmaps
from handpose.heatmaps import gaussian_heatmaps
from handpose.inference import infer
from handpose.metrics import joint_errors_mm, pose_error_mm, procrustes_align, uv_error_px
from handpose.skeleton import SCALE_BONE
from handpose.train import Splits, train

# name: (what the paper does, the variant it matters to, changes to params.yaml, pretrained?)
DIFFERENCES = {
    "default": ("(the default recipe)", "m_cos_2", {}, True),
    "scratch": ("no pretrained backbone", "m_cos_2", {}, False),
    "argmax": ("2D joints by argmax", "m_cos_2", {"model": {"uv": "argmax"}}, True),
    "lr_1e-4": ("lr 1e-4", "m_cos_2", {"train": {"lr": 1e-4}}, True),
    "epochs_16": ("more epochs (16; paper 100)", "m_cos_2", {"train": {"epochs": 16}}, True),
    "n_train_3200": ("3200 training hands", "m_cos_2", {"data": {"n_train": 3200}}, True),
    "mlp_1024": ("MLP 1024 -> 256 -> 20", "m_cos_2", {"model": {"mlp_width": 1024}}, True),
    "sigma_0.75": ("heatmap sigma 2 of 64 cells (0.75 of our 24)", "m_cos_2", {"heatmap": {"sigma": 0.75}}, True),
    "fp32": ("fp32 (paper), not bf16 autocast (native here)", "m_cos_2", {"train": {"bf16": False}}, True),
    "m_asm_default": ("(the default recipe)", "m_asm", {}, True),
    "m_asm_batch_25": ("m_asm at batch 25", "m_asm", {"train": {"batch_size": 25}}, True),
}


def merged(base: dict, changes: dict) -> dict:
    out = {**base}
    for key, value in changes.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) else value
    return out


def more_training_hands(n_train: int, test: dict, seed: int, size: int) -> dict:
    """n_train rendered hands of the dataset's seed, none of them a test hand."""
    test_ids = set(int(i) for i in test["image_ids"])
    hands = render_arrays(n_train + len(test_ids), seed, size, progress=False)
    keep = np.array([i for i in range(len(hands["xyz"])) if i not in test_ids][:n_train])
    xyz = hands["xyz"][keep]
    scale = np.linalg.norm(xyz[:, SCALE_BONE[0]] - xyz[:, SCALE_BONE[1]], axis=-1).astype(np.float32)
    return {"images": hands["images"][keep], "xyz": xyz, "K": hands["K"][keep], "scale": scale, "image_size": 224}


def run(name: str, params_path: str, split_dir: str, heatmaps_dir: str, pretrained: str, seed: int) -> dict:
    what, variant, changes, use_pretrained = DIFFERENCES[name]
    raw = merged(load_params(params_path).model_dump(), changes)
    data = raw["data"]  # more training hands are rendered here, not by the data stage
    data["n_synthetic"] = max(data["n_synthetic"], data["n_train"] + data["n_test"])
    params = validate(raw)
    config = variant_config(params, variant)
    setup_torch(config.train)
    train_split, test_split = load_split(split_dir, "train"), load_split(split_dir, "test")
    size = config.model.heatmap_size
    if params.data.n_train != len(train_split["xyz"]):
        train_split = more_training_hands(params.data.n_train, test_split, params.data.seed, config.model.input_size)
    if "heatmap" in changes or params.data.n_train != len(load_split(split_dir, "train")["xyz"]):
        uv = project(train_split["xyz"], train_split["K"])
        heatmaps = gaussian_heatmaps(uv, 224, size, params.heatmap.sigma, np.float16)
    else:
        heatmaps = load_heatmaps(heatmaps_dir, len(train_split["images"]), size)
    backbone = load_pretrained(pretrained, config.model) if use_pretrained else None
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Splits(train_split, heatmaps, test_split)
        model = train(config, seed, data, Path(tmp) / "m.pt", progress=False, pretrained=backbone)
    seconds = time.perf_counter() - tic
    pred = infer(model, test_split)
    true = test_split["xyz"]
    true_uv = project(true, test_split["K"])
    return {
        "run": name,
        "undoes": what,
        "variant": variant,
        "pose_error_mm": round(pose_error_mm(pred["xyz"], true), 2),
        "pa_mpjpe_mm": round(float(joint_errors_mm(procrustes_align(pred["xyz"], true), true).mean()), 2),
        "uv_error_px": round(uv_error_px(pred["uv"], true_uv), 2),
        "train_seconds": round(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(DIFFERENCES), default=list(DIFFERENCES))
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--split", default="data/split")
    parser.add_argument("--heatmaps", default="data/heatmaps")
    parser.add_argument("--pretrained", default="models/pretrain.pt")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = []
    for name in args.only:
        results.append(run(name, args.params, args.split, args.heatmaps, args.pretrained, args.seed))
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"summary": results}, indent=2))


if __name__ == "__main__":
    main()
