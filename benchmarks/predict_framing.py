"""How well `handpose predict` finds and frames a hand: its two-pass 2D error on photo-sized images,
against the same hands seen at the training framing. Prints JSON.

Synthetic: test-split hands composited into 640x480 photos, small and off-centre (150 px) and large
(filling the height), over another test image's blurred enlargement. With `--images DIR --labels FILE`
(labelled square crops in `handpose convert`'s input format, e.g. real photos), each crop is also padded
out to `--pad` px (edges repeated) around its centre and predicted with no box.
Errors are in px of the 224 frame the hand is seen in (the crop's or the composite's). Both the framed
evaluation and `predict` see each frame through `--params`' evaluate views, as `dvc repro` evaluates.

    python benchmarks/predict_framing.py --model m_cos_1
    python benchmarks/predict_framing.py --model m_cos_1 --images DIR --labels DIR/labels.json --hand left
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from handpose.camera import FRAME_SIZE, mirror, mirror_uv, project
from handpose.checkpoints import load_model
from handpose.config import load_params
from handpose.data.freihand import open_freihand, read_rgb
from handpose.data.images import to_input_size
from handpose.inference import infer
from handpose.metrics import uv_error_px
from handpose.predict import predict_images, resolve_model

PHOTO = (480, 640)  # h, w


def framed_uv(
    model, size: int, frames: np.ndarray, K: np.ndarray, xyz: np.ndarray, left: bool, views: list
) -> np.ndarray:
    """The model's joints on 224 frames as the evaluation sees them (left hands mirrored in and out)."""
    if left:
        frames, (xyz, K) = frames[:, :, ::-1], mirror(xyz, K)
    split = {
        "images": np.stack([to_input_size(np.ascontiguousarray(f), size) for f in frames]),
        "K": K.astype(np.float32),
        "xyz": xyz.astype(np.float32),
        "scale": np.full(len(frames), 0.03, np.float32),
    }
    uv = infer(model, split, views=views)["uv"]
    return mirror_uv(uv) if left else uv


def two_pass_error(
    model_path: Path,
    photo: np.ndarray,
    K: np.ndarray,
    true_uv: np.ndarray,
    hand: str,
    unit: float,
    tmp: Path,
    views: list,
) -> float:
    path = tmp / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (result,) = predict_images(
        model_path, [path], K=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]), out=tmp / "j.json", hand=hand, views=views
    )
    return uv_error_px(np.array(result["uv_px"]), true_uv) * unit


def synthetic(model_path: Path, model, size: int, dataset: Path, n: int, tmp: Path, views: list) -> dict:
    data = open_freihand(dataset)
    rng = np.random.default_rng(0)
    ids = rng.choice(data.num_images, n, replace=False)
    frames = np.stack([data.read_rgb(int(i)) for i in ids])
    poses = ids % data.num_poses
    K, xyz = data.K[poses], data.xyz[poses]
    true = project(xyz, K)
    framed = uv_error_px(framed_uv(model, size, frames, K, xyz, False, views), true)
    out = {"framed_px": framed}
    for name, side in (("small", 150), ("large", PHOTO[0])):
        errors = []
        for k in range(n):
            scene = cv2.GaussianBlur(cv2.resize(frames[(k + 1) % n], PHOTO[::-1]), (0, 0), 8)
            x = int(rng.integers(0, PHOTO[1] - side + 1))
            y = int(rng.integers(0, PHOTO[0] - side + 1))
            scene[y : y + side, x : x + side] = cv2.resize(frames[k], (side, side), interpolation=cv2.INTER_AREA)
            s = side / FRAME_SIZE
            photo_K = np.array([[s, 0, x], [0, s, y], [0, 0, 1]]) @ K[k]
            errors.append(two_pass_error(model_path, scene, photo_K, true[k] * s + [x, y], "right", 1 / s, tmp, views))
        out[f"{name}_px"] = float(np.mean(errors))
        out[f"{name}_ratio"] = out[f"{name}_px"] / framed
    return out


def photos(
    model_path: Path, model, size: int, folder: Path, labels: Path, hand: str, pad: int, tmp: Path, views: list
) -> dict:
    labels = json.loads(labels.read_text())
    crops = [read_rgb(folder / e["image"]) for e in labels]
    side = crops[0].shape[0]
    unit = FRAME_SIZE / side  # crop px -> 224 frame px
    K = np.array([e["K"] for e in labels], np.float64)
    xyz = np.array([e["xyz"] for e in labels], np.float64)
    true = project(xyz, K)
    frames = np.stack([cv2.resize(c, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA) for c in crops])
    frame_K = np.diag([unit, unit, 1.0]) @ K
    framed = float(uv_error_px(framed_uv(model, size, frames, frame_K, xyz, hand == "left", views), true * unit))
    errors = []
    border = (pad - side) // 2
    for crop, k, uv in zip(crops, K, true):
        photo = cv2.copyMakeBorder(crop, border, border, border, border, cv2.BORDER_REPLICATE)
        photo_K = k.copy()
        photo_K[:2, 2] += border
        errors.append(two_pass_error(model_path, photo, photo_K, uv + border, hand, unit, tmp, views))
    two_pass = float(np.mean(errors))
    return {"images": len(crops), "framed_px": framed, "two_pass_px": two_pass, "ratio": two_pass / framed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a variant (its first seed) or a checkpoint")
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--params", default="params.yaml", help="whose evaluate views to use (default: %(default)s)")
    parser.add_argument("--dataset", default="data/dataset", help="the synthetic hands (default: %(default)s)")
    parser.add_argument("--n", type=int, default=50, help="synthetic hands per case (default: %(default)s)")
    parser.add_argument("--images", type=Path, help="a folder of square crops (convert's input format)")
    parser.add_argument("--labels", type=Path, help="their labels JSON (convert's input format)")
    parser.add_argument("--hand", default="right", choices=("right", "left"), help="the photos' hands")
    parser.add_argument(
        "--pad", type=int, default=512, help="the photos padded out to this side (default: %(default)s)"
    )
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n: at least one hand")
    if (args.images is None) != (args.labels is None):
        parser.error("--images and --labels go together")
    views = load_params(args.params).evaluate.views
    model_path = resolve_model(args.model, args.models_dir)
    model, checkpoint = load_model(model_path)
    size = checkpoint["config"].model.input_size
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "model": str(model_path),
            "views": len(views),
            "synthetic": synthetic(model_path, model, size, Path(args.dataset), args.n, Path(tmp), views),
        }
        if args.images:
            result["photos"] = photos(
                model_path, model, size, args.images, args.labels, args.hand, args.pad, Path(tmp), views
            )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
