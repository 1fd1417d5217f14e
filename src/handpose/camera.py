"""Pinhole camera maths: the one place that projects and lifts with K.

Works on numpy arrays and torch tensors alike (batched, last dims 21x3 / 3x3).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _inverse(K: Array) -> Array:
    return torch.linalg.inv(K) if isinstance(K, torch.Tensor) else np.linalg.inv(K)


def project(xyz: Array, K: Array) -> Array:
    """Camera-space points (..., J, 3) -> pixel coordinates (..., J, 2)."""
    uvw = xyz @ K.swapaxes(-1, -2)
    return uvw[..., :2] / uvw[..., 2:3]


def lift(uv: Array, depth: Array, K: Array) -> Array:
    """Pixels (..., J, 2) at camera-space depths (..., J) -> points (..., J, 3): K^-1 [u, v, 1] * z."""
    ones = uv[..., :1] * 0 + 1
    uv1 = torch.cat([uv, ones], -1) if isinstance(uv, torch.Tensor) else np.concatenate([uv, ones], -1)
    rays = uv1 @ _inverse(K).swapaxes(-1, -2)
    return rays * depth[..., None]
