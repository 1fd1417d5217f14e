"""A grid of dataset samples with their 2D skeletons drawn over them, to look at what the data is."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from handpose.atomic import atomic_path
from handpose.camera import project
from handpose.data.freihand import open_freihand, read_visibility
from handpose.skeleton import BONE_FINGER, BONES

# One colour per finger (RGB), and one per visibility code beside the dataset (0 visible,
# 1 hidden by the hand itself, 2 hidden by an object).
FINGER_COLOURS = [(255, 80, 80), (255, 200, 0), (60, 220, 60), (0, 200, 255), (200, 90, 255)]
VISIBILITY_COLOURS = {0: (255, 255, 255), 1: (255, 40, 40), 2: (40, 120, 255)}


def draw_skeleton(
    rgb: np.ndarray, uv: np.ndarray, visibility: np.ndarray | None = None, colour: tuple | None = None
) -> np.ndarray:
    """A copy of `rgb` with bones coloured by finger and joints by visibility (or all in `colour`)."""
    out = rgb.copy()
    pts = np.round(uv).astype(int)
    for (parent, child), finger in zip(BONES, BONE_FINGER):
        cv2.line(out, tuple(pts[parent]), tuple(pts[child]), colour or FINGER_COLOURS[finger], 1, cv2.LINE_AA)
    for j, p in enumerate(pts):
        joint = colour or VISIBILITY_COLOURS[int(visibility[j]) if visibility is not None else 0]
        cv2.circle(out, tuple(p), 2, joint, -1, cv2.LINE_AA)
    return out


def write_contact_sheet(dataset: str | Path, out: str | Path, n: int = 16, cols: int = 4, seed: int = 0) -> None:
    """Draw `n` random images of a FreiHAND-layout folder with their skeletons into one PNG."""
    if n < 1 or cols < 1:
        raise ValueError(f"contact sheet: --n and --cols must be >= 1, got {n} and {cols}")
    if Path(out).suffix.lower() not in (".png", ".jpg"):
        raise ValueError(f"{out}: the contact sheet is written as .png or .jpg")
    data = open_freihand(dataset)
    visibility = read_visibility(dataset)
    ids = np.sort(np.random.default_rng(seed).choice(data.num_images, min(n, data.num_images), replace=False))
    tiles = []
    for i in ids:
        pose = data.pose_index(int(i))
        uv = project(data.xyz[pose], data.K[pose])
        tiles.append(draw_skeleton(data.read_rgb(int(i)), uv, None if visibility is None else visibility[pose]))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    rows = [np.hstack(tiles[r : r + cols]) for r in range(0, len(tiles), cols)]
    with atomic_path(out) as tmp:  # the temporary name keeps the suffix, which picks cv2's encoder
        if not cv2.imwrite(str(tmp), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR)):
            raise ValueError(f"{out}: could not write the image")
