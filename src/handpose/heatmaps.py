"""Heatmap maths: Gaussian joint targets, the mapping between image pixels and heatmap cells, and
reading joints back from heatmaps (argmax, soft-argmax). No files: the `heatmaps` stage is
heatmap_targets.py."""

from __future__ import annotations

import numpy as np
import torch


def image_to_heatmap(uv: np.ndarray, image_size: int, heatmap_size: int) -> np.ndarray:
    """Image pixel coordinates -> heatmap coordinates (pixel centres align)."""
    return (uv + 0.5) * (heatmap_size / image_size) - 0.5


def heatmap_to_image(uv: torch.Tensor, image_size: int, heatmap_size: int) -> torch.Tensor:
    """Heatmap coordinates -> image pixel coordinates; the inverse of `image_to_heatmap`."""
    return (uv + 0.5) * (image_size / heatmap_size) - 0.5


HEATMAP_CHUNK = 32  # samples drawn at a time: the chunk stays in cache (all at once is ~10x slower)


def gaussian_heatmaps(
    uv: np.ndarray,
    image_size: int,
    heatmap_size: int,
    sigma: float,
    dtype: type = np.float32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(N, J, 2) image pixels -> (N, J, H, H) Gaussians with peak 1 at each joint, as `dtype`, written
    into `out` when given (e.g. a memory-mapped file's rows). Computed in float32 chunk by chunk; a
    float16 result is cast from it by torch, bit for bit numpy's rounding but ~100x faster on the
    Gaussians' tiny (subnormal) values."""
    centre = image_to_heatmap(np.asarray(uv, np.float32), image_size, heatmap_size)
    grid = np.arange(heatmap_size, dtype=np.float32)
    shape = (*centre.shape[:2], heatmap_size, heatmap_size)
    out = np.empty(shape, dtype) if out is None else out
    direct = out.dtype == np.float32
    buffer = None if direct else np.empty((min(HEATMAP_CHUNK, len(centre)), *shape[1:]), np.float32)
    for start in range(0, len(centre), HEATMAP_CHUNK):
        chunk = centre[start : start + HEATMAP_CHUNK]
        gx = np.exp(-((grid - chunk[..., 0:1]) ** 2) / (2 * sigma**2))  # (n, J, W)
        gy = np.exp(-((grid - chunk[..., 1:2]) ** 2) / (2 * sigma**2))  # (n, J, H)
        rows = out[start : start + len(chunk)]
        np.multiply(gy[..., :, None], gx[..., None, :], out=rows if direct else buffer[: len(chunk)])
        if not direct:
            torch.from_numpy(rows).copy_(torch.from_numpy(buffer[: len(chunk)]))
    return out


def soft_argmax(heatmaps: torch.Tensor, radius: int | None = None) -> torch.Tensor:
    """(B, J, H, W) -> (B, J, 2) sub-pixel (x, y): the centre of mass of the positive heatmap values
    within `radius` cells of each maximum (default max(2, W // 8)). Differentiable in those values.

    A window, rather than the whole map, keeps background noise from pulling the estimate to the
    centre, and a plain (not softmax) weighting keeps a Gaussian's centre unbiased.
    """
    b, j, h, w = heatmaps.shape
    radius = max(2, w // 8) if radius is None else radius
    x = heatmaps.float()
    peak = hard_argmax(x)  # (B, J, 2)
    xs = torch.arange(w, device=x.device, dtype=x.dtype)
    ys = torch.arange(h, device=x.device, dtype=x.dtype)
    in_x = (xs - peak[..., :1]).abs() <= radius  # (B, J, W)
    in_y = (ys - peak[..., 1:]).abs() <= radius  # (B, J, H)
    window = in_y[..., :, None] & in_x[..., None, :]
    weights = torch.where(window, x.clamp_min(0), 0.0)
    # A tiny weight at the peak itself keeps all-negative windows well defined.
    at_peak = (xs == peak[..., :1])[..., None, :] & (ys == peak[..., 1:])[..., :, None]
    weights = weights + 1e-6 * at_peak
    total = weights.sum((2, 3))
    return torch.stack([(weights.sum(2) * xs).sum(-1) / total, (weights.sum(3) * ys).sum(-1) / total], dim=-1)


def hard_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """(B, J, H, W) -> (B, J, 2) integer (x, y) of each maximum; no gradient (the paper's code)."""
    b, j, h, w = heatmaps.shape
    idx = heatmaps.detach().reshape(b, j, h * w).argmax(-1)
    return torch.stack([idx % w, idx // w], dim=-1).to(torch.float32)
