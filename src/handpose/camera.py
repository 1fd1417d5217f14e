"""Pinhole camera maths: the one place that projects and lifts with K.

Works on numpy arrays and torch tensors alike (batched, last dims 21x3 / 3x3).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

Array = TypeVar("Array", np.ndarray, "torch.Tensor")

FRAME_SIZE = 224  # px, FreiHAND's square image size: the frame every image is seen in
PRINCIPAL_POINT = (112.0, 112.0)  # px, FreiHAND's optical centre: the middle of the frame


def _torch_of(x: Array):
    """torch, if `x` is a tensor (then torch is loaded); else None. The numpy-only stages (data, split)
    never import torch for this module: its import is most of their start-up time."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(x, torch.Tensor) else None


def _inverse(K: Array) -> Array:
    return torch.linalg.inv(K) if (torch := _torch_of(K)) else np.linalg.inv(K)


def intrinsics(fx: float | np.ndarray, fy: float | np.ndarray, cx: float, cy: float) -> np.ndarray:
    """K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]; array focal lengths give a stack (..., 3, 3)."""
    fx, fy = np.broadcast_arrays(np.asarray(fx, np.float64), np.asarray(fy, np.float64))
    K = np.zeros((*fx.shape, 3, 3))
    K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = fx, fy, cx, cy, 1.0
    return K


def project(xyz: Array, K: Array) -> Array:
    """Camera-space points (..., J, 3) -> pixel coordinates (..., J, 2)."""
    uvw = xyz @ K.swapaxes(-1, -2)
    return uvw[..., :2] / uvw[..., 2:3]


def lift(uv: Array, depth: Array, K: Array) -> Array:
    """Pixels (..., J, 2) at camera-space depths (..., J) -> points (..., J, 3): K^-1 [u, v, 1] * z."""
    ones = uv[..., :1] * 0 + 1
    uv1 = torch.cat([uv, ones], -1) if (torch := _torch_of(uv)) else np.concatenate([uv, ones], -1)
    rays = uv1 @ _inverse(K).swapaxes(-1, -2)
    return rays * depth[..., None]


def square_to_frame(K: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """K of the FRAME_SIZE frame made from the square (x0, y0, side) of an image (a crop, or with
    negative x0 / y0 a padding), resized to FRAME_SIZE."""
    crop = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    resize = np.diag([FRAME_SIZE / side, FRAME_SIZE / side, 1.0])
    return resize @ crop @ np.asarray(K, np.float64)


def mirror(xyz: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A left hand as a right one (or back): the joints (..., 21, 3) and K (..., 3, 3) of the image
    flipped left to right in the FRAME_SIZE frame. Pixel centres are at integers, so u -> FRAME_SIZE - 1 - u;
    x -> -x with cx -> FRAME_SIZE - 1 - cx (and the skew negated) projects to exactly that."""
    flip = np.diag([-1.0, 1.0, 1.0])
    K = np.array(K, np.float64)
    K[..., 0, 2] = FRAME_SIZE - 1 - K[..., 0, 2]
    K[..., 0, 1] *= -1
    return (np.asarray(xyz, np.float64) @ flip).astype(np.float32), K.astype(np.float32)


def mirror_uv(uv: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) of the FRAME_SIZE frame, flipped left to right (as `mirror` flips the image)."""
    out = np.array(uv, copy=True)
    out[..., 0] = FRAME_SIZE - 1 - out[..., 0]
    return out
