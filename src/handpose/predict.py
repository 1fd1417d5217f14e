"""Run a trained model on your own images: 21 joints in pixels and millimetres, and an overlay.

The image is centre-cropped to a square and seen as a 224x224 FreiHAND-like frame. Like the
paper's method, lifting to 3D needs the root (wrist) depth and the hand's scale; for your images
they are assumptions (`--root-depth`, `--scale`), so trust the 2D joints and the 3D shape more
than the absolute 3D position.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from handpose.atomic import atomic_path, json_text, write_text
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


def overlay_path(image: str | Path, overlay_dir: str | Path) -> Path:
    return Path(overlay_dir) / f"{Path(image).stem}_pose.png"


def _check_arguments(
    images: list[str | Path],
    K: tuple[float, float, float, float] | None,
    root_depth: float,
    scale: float,
    out: str | Path | None,
    overlay_dir: str | Path | None,
) -> None:
    """Refuse, before anything is loaded or written, what would give no result or a wrong one."""
    for flag, value in (("--root-depth", root_depth), ("--scale", scale)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag}: must be a finite length > 0 (metres), got {value}")
    if K is not None and not (all(math.isfinite(v) for v in K) and K[0] != 0 and K[1] != 0):
        raise ValueError(f"--K: fx and fy must be non-zero and all four finite (a camera to invert), got {list(K)}")
    if out is not None and Path(out).is_dir():
        raise ValueError(f"--out {out}: is a folder; give the JSON file to write, e.g. {Path(out) / 'joints.json'}")
    if overlay_dir is not None:
        if Path(overlay_dir).exists() and not Path(overlay_dir).is_dir():
            raise ValueError(f"--overlay-dir {overlay_dir}: exists and is not a folder")
        seen: dict[Path, str | Path] = {}
        for image in images:
            overlay = overlay_path(image, overlay_dir)
            if overlay in seen:
                raise ValueError(
                    f"--overlay-dir: {seen[overlay]} and {image} would both write {overlay}; rename one, or "
                    "predict them in two runs"
                )
            seen[overlay] = image


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
    _check_arguments(images, K, root_depth, scale, out, overlay_dir)
    model_path = resolve_model(model, models_dir)
    model, checkpoint = load_model(model_path)
    K = None if K is None else intrinsics(*K)
    size = checkpoint["config"].model.input_size
    results, written = [], []
    try:  # all or nothing: a failure on any image removes the overlays already written
        for path in images:
            results.append(_predict_one(model, path, model_path, K, size, root_depth, scale, overlay_dir))
            if overlay_dir is not None:
                written.append(Path(results[-1]["overlay"]))
        text = json_text(results, out or "the output")
        if out is not None:
            write_text(out, text)
    except BaseException:
        for overlay in written:
            overlay.unlink(missing_ok=True)
        raise
    if out is None:
        print(text, end="")
    return results


def _predict_one(
    model: torch.nn.Module,
    path: str | Path,
    model_path: Path,
    K: np.ndarray | None,
    size: int,
    root_depth: float,
    scale: float,
    overlay_dir: str | Path | None,
) -> dict:
    """One image's result, and its overlay written when `overlay_dir` is given."""
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
    try:
        pred = infer(model, split)
    except ValueError as err:
        raise ValueError(f"{model_path}: {err}") from None
    uv = pred["uv"][0] * side / FRAME_SIZE + [x0, y0]
    result = {
        "image": str(path),
        "model": str(model_path),
        "joints": JOINT_NAMES,
        "uv_px": np.round(uv, 2).tolist(),
        "xyz_mm": np.round(pred["xyz"][0] * 1000, 1).tolist(),
    }
    if overlay_dir is not None:
        overlay = overlay_path(path, overlay_dir)
        with atomic_path(overlay) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(draw_skeleton(rgb, uv), cv2.COLOR_RGB2BGR))
        result["overlay"] = str(overlay)
    return result
