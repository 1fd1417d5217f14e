"""Run a trained model on your own images: 21 joints in pixels and millimetres, and an overlay.

The model was trained on hands framed as crops around them, so `predict` frames each photo that way.
A first pass looks for the hand in the whole photo (padded to a square, its edges repeated) at several
zooms: the backbone is convolutional, so at zoom z a hand 1/z of the photo's side looks as large as the
hands it was trained on. Each zoom's joints give a square around their box with the training framing's
margin, and so do those of them that fit in one model input around their median (at zooms above 1,
some joints land on the background, far from the hand). The second pass sees each square through the
evaluation's views (params.yaml `evaluate:`, inference.infer) and keeps, of the squares in which its
heatmaps' peaks say it sees a hand, the one whose views agree best when it is framed anew on the joints
found in it: on a hand the rolled and zoomed views find the same joints, on a background each finds its
own. Its joints (the views' mean) are mapped back to the photo's pixels. `--box` (a hand's box, from a
detector say) skips the first pass.
A left hand (`--hand left`) is mirrored into a right one for the model and its joints mirrored back.
Like the paper's method, lifting to 3D needs the root (wrist) depth and the hand's scale; for your
images they are assumptions (`--root-depth`, `--scale`), so trust the 2D joints and the 3D shape more
than the absolute 3D position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from handpose.atomic import atomic_path, json_text, write_text
from handpose.camera import FRAME_SIZE, PRINCIPAL_POINT, intrinsics, mirror, mirror_uv, square_to_frame
from handpose.checkpoints import load_model, seed_checkpoints
from handpose.data.freihand import read_rgb
from handpose.data.images import to_input_size
from handpose.data.layout import HANDS
from handpose.data.synthetic.poses import CLOSE_SPAN
from handpose.drawing import draw_skeleton
from handpose.inference import FAR_PX, ONE_VIEW, infer
from handpose.model.pose_net import backbone_joints
from handpose.skeleton import JOINT_NAMES

DEFAULT_FOCAL = 480.0  # px in the FreiHAND frame, mid-range of FreiHAND's 375-600
DEFAULT_ROOT_DEPTH, DEFAULT_SCALE = 0.6, 0.03  # metres: FreiHAND-like; `--root-depth`, `--scale`
# The second pass's crop: the joints' box then spans the middle of the share of the frame that the
# renderer's close-up hands span (poses.CLOSE_SPAN).
FRAMING_SPAN = sum(CLOSE_SPAN) / 2
MIN_SIDE_PX = 16  # a smaller crop holds no hand the model could see
# A pass finds a hand when its heatmaps' peaks (mean over joints) reach this. The default run's models
# peak at 0.18 or more on 95% of real and synthetic hands, but also reach 0.14-0.21 (median) on scenes
# with no hand: this refuses a photo in which the model sees nothing, not every photo without a hand.
FOUND_PEAK = 0.15
# The first pass's zooms of the whole photo: a hand from its full side down to a fifth of it (what they
# buy: docs/results.md); a zoom costs its square.
SEARCH_ZOOMS = (1, 2, 3, 4, 5)


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
    hand: str = "right",
    box: str | None = None,
) -> tuple[float, float, float, float] | None:
    """Refuse, before anything is loaded or written, what would give no result or a wrong one; returns
    the box as numbers."""
    if hand not in HANDS:
        raise ValueError(f"--hand: must be one of {', '.join(HANDS)}, got {hand!r}")
    if box is not None:
        try:
            numbers = tuple(float(v) for v in box.split(","))
        except ValueError:
            numbers = ()
        if not (len(numbers) == 4 and all(map(math.isfinite, numbers)) and numbers[2] > 0 and numbers[3] > 0):
            raise ValueError(f"--box: expected x,y,w,h in pixels, with w and h > 0, got {box!r}")
        box = numbers
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
    return box


def predict_images(
    model: str | Path,
    images: list[str | Path],
    models_dir: str | Path = "models",
    K: tuple[float, float, float, float] | None = None,
    root_depth: float = DEFAULT_ROOT_DEPTH,
    scale: float = DEFAULT_SCALE,
    out: str | Path | None = None,
    overlay_dir: str | Path | None = None,
    hand: str = "right",
    box: str | None = None,
    views: Sequence[tuple[float, float]] = ONE_VIEW,
) -> list[dict]:
    """One result per image: 2D joints in the image's own pixels and 3D joints in camera mm, written
    as JSON to `out` (or printed). `model` is a checkpoint or a variant's name; K is (fx, fy, cx, cy);
    `box` ("x,y,w,h") is where the hand is, in pixels (default: found by a first pass); `views`: the
    (roll, zoom) cameras the second pass sees each square through (inference.infer)."""
    box = _check_arguments(images, K, root_depth, scale, out, overlay_dir, hand, box)
    model_path = resolve_model(model, models_dir)
    model, checkpoint = load_model(model_path)
    K = None if K is None else intrinsics(*K)
    size = checkpoint["config"].model.input_size
    camera = _Camera(model, model_path, size, K, root_depth, scale, hand == "left", views)
    results, written = [], []
    try:  # all or nothing: a failure on any image removes the overlays already written
        for path in images:
            results.append(_predict_one(camera, path, box, hand, overlay_dir))
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


class _Camera:
    """One model seeing squares of a photo as its training frames (mirrored for a left hand)."""

    def __init__(
        self, model, model_path: Path, size: int, K, root_depth: float, scale: float, left: bool,
        views: Sequence[tuple[float, float]],
    ):  # fmt: skip
        self.model, self.model_path, self.size, self.K = model, model_path, size, K
        self.root_depth, self.scale, self.left, self.views = root_depth, scale, left, views

    def search(self, rgb: np.ndarray) -> list[np.ndarray]:
        """The first pass: per zoom in SEARCH_ZOOMS, the joints (in the photo's pixels) that the backbone
        finds in the whole photo seen at that zoom of the model's input size; and, where some fall outside
        the window of one model input centred on their median, those inside it."""
        h, w = rgb.shape[:2]
        side = max(h, w)
        x0, y0 = (w - side) // 2, (h - side) // 2
        square = _square(rgb, x0, y0, side)
        found = []
        for zoom in SEARCH_ZOOMS:
            size = self.size * zoom
            image = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
            uv = locate(self.model.backbone, image[:, ::-1] if self.left else image)
            if not (np.abs(uv) < FAR_PX).all():  # NaN compares False
                raise ValueError(
                    f"{self.model_path}: the model finds non-finite or absurd joints in the photo; "
                    "its weights are not those of a trained model"
                )
            if self.left:
                uv[:, 0] = size - 1 - uv[:, 0]
            found.append((uv + 0.5) * side / size - 0.5 + [x0, y0])
            # A hand seen at this zoom fits in one model input: the window of side / zoom photo px.
            near = (np.abs(found[-1] - np.median(found[-1], 0)) <= side / zoom / 2).all(1)
            if 2 <= near.sum() < len(near):
                found.append(found[-1][near])
        return found

    def see(self, rgb: np.ndarray, x0: int, y0: int, side: int) -> dict:
        """The square (x0, y0, side) of `rgb` (edges repeated beyond it), seen through the views: joints
        in the photo's pixels, 3D joints, the heatmaps' mean peak, and the views' spread."""
        frame = cv2.resize(_square(rgb, x0, y0, side), (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)
        K = frame_intrinsics(self.K, x0, y0, side)
        xyz = np.array([[[0.0, 0.0, self.root_depth]] * len(JOINT_NAMES)], np.float32)
        if self.left:
            frame, (xyz, K) = frame[:, ::-1], mirror(xyz, K)
        split = {  # only the root's depth and the scale are read from a pose: the rest is predicted
            "images": to_input_size(np.ascontiguousarray(frame), self.size)[None],
            "K": K[None],
            "xyz": xyz,
            "scale": np.array([self.scale], np.float32),
        }
        try:
            pred = infer(self.model, split, with_peaks=True, views=self.views, with_spread=True)
        except ValueError as err:
            raise ValueError(f"{self.model_path}: {err}") from None
        uv, joints = pred["uv"][0], pred["xyz"][0]
        if self.left:
            uv, joints = mirror_uv(uv), mirror(joints, K)[0]
        return {
            "uv": uv * side / FRAME_SIZE + [x0, y0],
            "xyz": joints,
            "peak": float(pred["peaks"][0].mean()),
            "spread": float(pred["spread"][0]),  # px of the 224 frame, so that squares of any side compare
        }


def _square(rgb: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The square (x0, y0, side) of `rgb`, its edges repeated where it reaches beyond them."""
    h, w = rgb.shape[:2]
    pad = [max(0, -y0), max(0, y0 + side - h), max(0, -x0), max(0, x0 + side - w)]
    padded = cv2.copyMakeBorder(rgb, *pad, cv2.BORDER_REPLICATE)
    return padded[y0 + pad[0] : y0 + pad[0] + side, x0 + pad[2] : x0 + pad[2] + side]


def locate(backbone: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The joints (21, 2) the backbone finds in an RGB image whose side is a multiple of the model's input
    size, in that image's pixels."""
    x = torch.from_numpy(np.ascontiguousarray(image))[None].to(next(backbone.parameters()).device)
    return backbone_joints(backbone, x, image.shape[0])[0].cpu().numpy().astype(np.float64)


def framing(uv: np.ndarray) -> tuple[int, int, int]:
    """The square (x0, y0, side) that frames joints `uv` (or a box's corners) as the model was trained."""
    lo, hi = uv.min(0), uv.max(0)
    side = max(MIN_SIDE_PX, int(round(float((hi - lo).max()) / FRAMING_SPAN)))
    centre = (lo + hi) / 2
    return int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2)), side


def _predict_one(
    camera: _Camera, path: str | Path, box: tuple | None, hand: str, overlay_dir: str | Path | None
) -> dict:
    """One image's result (two passes, or one with `box`), and its overlay written when `overlay_dir` is given."""
    rgb = read_rgb(path)
    if box is None:
        seen = [(camera.see(rgb, *crop), crop) for crop in map(framing, camera.search(rgb))]
        hands = [candidate for candidate in seen if candidate[0]["peak"] >= FOUND_PEAK]
        if not hands:
            peak = max(pred["peak"] for pred, _ in seen)
            raise ValueError(f"{path}: no hand found (heatmap peak {peak:.2f} < {FOUND_PEAK}); give --box x,y,w,h")

        # Each square checked: framed anew on the joints found in it, a hand is still a hand, whose views
        # agree; a square around something else drifts to whatever its joints landed on.
        def check(candidate: tuple[dict, tuple]) -> tuple[float, float]:
            return camera.see(rgb, *framing(candidate[0]["uv"]))["spread"], -candidate[0]["peak"]

        pred, (x0, y0, side) = min(hands, key=check)
    else:
        x0, y0, side = framing(np.array([[box[0], box[1]], [box[0] + box[2], box[1] + box[3]]]))
        pred = camera.see(rgb, x0, y0, side)
    result = {
        "image": str(path),
        "model": str(camera.model_path),
        "hand": hand,
        "crop": [x0, y0, side],
        "peak": round(pred["peak"], 3),
        "views_spread_px": round(pred["spread"] * side / FRAME_SIZE, 2),  # in the photo's px
        "joints": JOINT_NAMES,
        "uv_px": np.round(pred["uv"], 2).tolist(),
        "xyz_mm": np.round(pred["xyz"] * 1000, 1).tolist(),
    }
    if overlay_dir is not None:
        overlay = overlay_path(path, overlay_dir)
        drawn = draw_skeleton(rgb, pred["uv"])
        cv2.rectangle(drawn, (x0, y0), (x0 + side, y0 + side), (255, 255, 255), 1, cv2.LINE_AA)  # the crop seen
        with atomic_path(overlay) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        result["overlay"] = str(overlay)
    return result
