"""Other cameras on the same hand: rolled about the optical axis (the image rotates about the principal
point and every joint about the camera's z axis) or zoomed (the focal length scales, the image about the
principal point). The 3D labels stay exact: depths and the hand's scale do not change. Exact for square
pixels (fx = fy), as in FreiHAND. Training rolls (pretrain.py); testing sees several views (inference.py)."""

from __future__ import annotations

import cv2
import numpy as np

from handpose.camera import FRAME_SIZE


def roll_matrices(angles: np.ndarray) -> np.ndarray:
    """(N,) angles in radians -> (N, 3, 3) rotations about the camera's z axis."""
    c, s = np.cos(angles), np.sin(angles)
    R = np.zeros((len(angles), 3, 3), np.float32)
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    return R


def roll(images: np.ndarray, xyz: np.ndarray, K: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, S, S, 3) seen in the 224-px frame with intrinsics K (N, 3, 3), and their joints
    (N, 21, 3), as a camera rolled by `angles` (N,) radians would see them."""
    R = roll_matrices(angles)
    return _warp(images, K, R[:, :2, :2]), xyz @ R.transpose(0, 2, 1)


def view(images: np.ndarray, K: np.ndarray, degrees: float, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, S, S, 3) with intrinsics K (N, 3, 3) as a camera rolled by `degrees` and zoomed by `zoom`
    sees them, and that camera's K. Its 3D joints are the original's times roll_matrices(angle)^T."""
    R = roll_matrices(np.full(len(images), np.radians(degrees)))
    zoomed = K.copy()
    zoomed[:, :2, :2] *= zoom
    return _warp(images, K, zoom * R[:, :2, :2]), zoomed


def _warp(images: np.ndarray, K: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Each image mapped by the linear map A[i] (2 x 2) about its principal point. Corners that come into
    view mirror the image's edge, so no black wedge tells the network that a sample was transformed."""
    size = images.shape[1]
    out = np.empty_like(images)
    for i in range(len(images)):
        # The principal point in this image's pixels (pixel centres align with the 224 frame's).
        centre = (K[i, :2, 2] + 0.5) * size / FRAME_SIZE - 0.5
        M = np.concatenate([A[i], (centre - A[i] @ centre)[:, None]], 1)
        out[i] = cv2.warpAffine(images[i], M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out
