"""Skeleton overlays on images (OpenCV): the one drawing of a hand for the contact sheet, the
report's figures and `handpose predict`."""

from __future__ import annotations

import cv2
import numpy as np

from handpose.data.layout import OBJECT_OCCLUDED, SELF_OCCLUDED, VISIBLE
from handpose.skeleton import BONE_FINGER, BONES

# One colour per finger (RGB), and one per visibility code.
FINGER_COLOURS = [(255, 80, 80), (255, 200, 0), (60, 220, 60), (0, 200, 255), (200, 90, 255)]
VISIBILITY_COLOURS = {VISIBLE: (255, 255, 255), SELF_OCCLUDED: (255, 40, 40), OBJECT_OCCLUDED: (40, 120, 255)}


def draw_skeleton(
    rgb: np.ndarray, uv: np.ndarray, visibility: np.ndarray | None = None, colour: tuple | None = None
) -> np.ndarray:
    """A copy of `rgb` with bones coloured by finger and joints by visibility (or all in `colour`)."""
    out = rgb.copy()
    pts = np.round(uv).astype(int)
    for (parent, child), finger in zip(BONES, BONE_FINGER):
        cv2.line(out, tuple(pts[parent]), tuple(pts[child]), colour or FINGER_COLOURS[finger], 1, cv2.LINE_AA)
    for j, p in enumerate(pts):
        joint = colour or VISIBILITY_COLOURS[int(visibility[j]) if visibility is not None else VISIBLE]
        cv2.circle(out, tuple(p), 2, joint, -1, cv2.LINE_AA)
    return out
