"""Inference: a trained model over a split's images, batch by batch. The one inference loop: the
training loop's test error, the `evaluate` stage, `handpose predict` and the benchmarks call it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from handpose.augment import roll_matrices, view
from handpose.camera import project
from handpose.model.pose_net import HandPoseNet, to_input
from handpose.skeleton import ROOT

ONE_VIEW = ((0.0, 1.0),)  # (roll in degrees, zoom): the image as it is

# Beyond any camera's reach, and far below where float32 squares of mm or px overflow (3.4e38).
FAR_M, FAR_PX = 1e6, 1e9


@torch.no_grad()
def infer(
    model: HandPoseNet,
    split: dict[str, np.ndarray],
    batch_size: int = 64,
    channels_last: bool = False,
    with_peaks: bool = False,
    views: Sequence[tuple[float, float]] = ONE_VIEW,
    with_spread: bool = False,
) -> dict[str, np.ndarray]:
    """The model's 3D joints (N, 21, 3) and 2D joints (N, 21, 2) for a split's images, given each one's
    K, ground-truth root depth and scale (the paper's protocol), on whichever device the model is on;
    `with_peaks`: also each joint's heatmap peak (N, 21), how sure the last stack is of it.
    `views`: (roll in degrees, zoom) of the cameras each image is also seen through (augment.view); the
    3D joints are the mean of theirs, brought back to the image's camera, and the 2D joints its projection;
    `with_spread`: also how far the views' joints project from the mean's (N,), px of the image: how much
    the views disagree (0 for one view)."""
    model.eval()
    device = next(model.parameters()).device
    xyz, uv, peaks, spreads = [], [], [], []
    for start in range(0, len(split["images"]), batch_size):
        sl = slice(start, start + batch_size)
        true_xyz, scale = (torch.from_numpy(split[key][sl]).to(device) for key in ("xyz", "scale"))
        images, K = np.array(split["images"][sl]), split["K"][sl]  # a copy: memory-mapped rows are read-only
        seen = []
        for degrees, zoom in views:
            pixels, view_K = (images, K) if (degrees, zoom) == (0, 1) else view(images, K, degrees, zoom)
            out = model(
                to_input(torch.from_numpy(pixels).to(device), channels_last),
                torch.from_numpy(view_K).to(device),
                true_xyz[:, ROOT, 2],  # rolling and zooming leave depths as they are
                scale,
            )
            joints = out["xyz"].cpu().numpy()
            if degrees:  # back from the rolled camera, whose joints are the image camera's times R^T
                joints = joints @ roll_matrices(np.radians([degrees]))[0]
            peak = out["heatmaps"][-1].float().amax((2, 3)).cpu().numpy() if with_peaks else None
            seen.append((joints, out["uv"].cpu().numpy(), peak))
        xyz.append(np.mean([joints for joints, _, _ in seen], 0, dtype=np.float32))
        # The model's own 2D joints where it saw the image as it is, else the mean's projection.
        as_is = len(views) == 1 and tuple(views[0]) == (0, 1)
        mean_uv = project(xyz[-1], K).astype(np.float32)
        uv.append(seen[0][1] if as_is else mean_uv)
        if with_peaks:
            peaks.append(np.mean([peak for _, _, peak in seen], 0))
        if with_spread:
            spreads.append(np.mean([np.linalg.norm(project(j, K) - mean_uv, axis=-1).mean(1) for j, _, _ in seen], 0))
    xyz, uv = np.concatenate(xyz), np.concatenate(uv)
    # Finite weights can still overflow (weights scaled by 1e30): such joints are never a result, and
    # neither are finite ones so far off that the metrics' float32 squares would overflow on them.
    bad = ~((np.abs(xyz) < FAR_M).all((1, 2)) & (np.abs(uv) < FAR_PX).all((1, 2)))  # NaN compares False
    if bad.any():
        raise ValueError(
            f"the model predicts non-finite or absurd joints for {bad.sum()} of {len(bad)} images (first: row "
            f"{int(np.argmax(bad))}); its weights are not those of a trained model"
        )
    result = {"xyz": xyz, "uv": uv}
    if with_peaks:
        result["peaks"] = np.concatenate(peaks)
    if with_spread:
        result["spread"] = np.concatenate(spreads)
    return result
