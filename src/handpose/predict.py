"""Run a trained model on your own images: 21 joints in pixels and millimetres, and an overlay.

The image is centre-cropped to a square and seen as a 224x224 FreiHAND-like frame. Like the
paper's method, lifting to 3D needs the root (wrist) depth and the hand's scale; for your images
they are assumptions (`--root-depth`, `--scale`), so trust the 2D joints and the 3D shape more
than the absolute 3D position.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from handpose.atomic import atomic_path, write_text
from handpose.camera import FRAME_SIZE, PRINCIPAL_POINT, intrinsics, square_to_frame
from handpose.checkpoints import load_model, seed_checkpoints
from handpose.data.freihand import read_rgb
from handpose.drawing import draw_skeleton
from handpose.inference import infer
from handpose.skeleton import JOINT_NAMES

DEFAULT_FOCAL = 480.0  # px in the FreiHAND frame, mid-range of FreiHAND's 375-600


def frame_intrinsics(K: np.ndarray | None, x0: int, y0: int, side: int) -> np.ndarray:
    """K of the 224 frame made by cropping the square (x0, y0, side) and resizing it to 224."""
    if K is None:
        return intrinsics(DEFAULT_FOCAL, DEFAULT_FOCAL, *PRINCIPAL_POINT).astype(np.float32)
    return square_to_frame(K, x0, y0, side).astype(np.float32)


def resolve_model(model: str | Path, models_dir: str | Path) -> Path:
    """A checkpoint path as given, or a variant's name: its first seed's model under `models_dir`."""
    model = Path(model)
    return model if model.suffix == ".pt" else next(iter(seed_checkpoints(Path(models_dir) / model).values()))


def predict_images(
    model: str | Path,
    images: list[str | Path],
    models_dir: str | Path = "models",
    K: tuple[float, float, float, float] | None = None,
    root_depth: float = 0.6,
    scale: float = 0.03,
    out: str | Path | None = None,
    overlay_dir: str | Path | None = None,
) -> list[dict]:
    """One result per image: 2D joints in the image's own pixels and 3D joints in camera mm, written
    as JSON to `out` (or printed). `model` is a checkpoint or a variant's name; K is (fx, fy, cx, cy)."""
    if root_depth <= 0 or scale <= 0:
        raise ValueError(f"--root-depth and --scale must be > 0 (metres), got {root_depth} and {scale}")
    model_path = resolve_model(model, models_dir)
    model, checkpoint = load_model(model_path)
    K = None if K is None else intrinsics(*K)
    size = checkpoint["config"].model.input_size
    results = []
    for path in images:
        rgb = read_rgb(path)
        h, w = rgb.shape[:2]
        side = min(h, w)
        x0, y0 = (w - side) // 2, (h - side) // 2
        frame = cv2.resize(rgb[y0 : y0 + side, x0 : x0 + side], (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)
        split = {
            "images": cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)[None],
            "K": frame_intrinsics(K, x0, y0, side)[None],
            # Only the root's depth and the scale are read from a pose: the rest is predicted.
            "xyz": np.array([[[0.0, 0.0, root_depth]] * len(JOINT_NAMES)], np.float32),
            "scale": np.array([scale], np.float32),
        }
        with torch.no_grad():
            pred = infer(model, split)
        uv = pred["uv"][0] * side / FRAME_SIZE + [x0, y0]
        result = {
            "image": str(path),
            "model": str(model_path),
            "joints": JOINT_NAMES,
            "uv_px": np.round(uv, 2).tolist(),
            "xyz_mm": np.round(pred["xyz"][0] * 1000, 1).tolist(),
        }
        if overlay_dir is not None:
            overlay = Path(overlay_dir) / f"{Path(path).stem}_pose.png"
            with atomic_path(overlay) as tmp:
                cv2.imwrite(str(tmp), cv2.cvtColor(draw_skeleton(rgb, uv), cv2.COLOR_RGB2BGR))
            result["overlay"] = str(overlay)
        results.append(result)
    text = json.dumps(results, indent=2)
    if out is None:
        print(text)
    else:
        write_text(out, text + "\n")
    return results
