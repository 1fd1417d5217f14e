"""Inference: a trained model over a split's images, batch by batch. The one inference loop: the
training loop's test error, the `evaluate` stage, `handpose predict` and the benchmarks call it."""

from __future__ import annotations

import numpy as np
import torch

from handpose.model.pose_net import HandPoseNet, to_input
from handpose.skeleton import ROOT

# Beyond any camera's reach, and far below where float32 squares of mm or px overflow (3.4e38).
FAR_M, FAR_PX = 1e6, 1e9


@torch.no_grad()
def infer(
    model: HandPoseNet,
    split: dict[str, np.ndarray],
    batch_size: int = 64,
    channels_last: bool = False,
    with_peaks: bool = False,
) -> dict[str, np.ndarray]:
    """The model's 3D joints (N, 21, 3) and 2D joints (N, 21, 2) for a split's images, given each one's
    K, ground-truth root depth and scale (the paper's protocol), on whichever device the model is on;
    `with_peaks`: also each joint's heatmap peak (N, 21), how sure the last stack is of it."""
    model.eval()
    device = next(model.parameters()).device
    xyz, uv, peaks = [], [], []
    for start in range(0, len(split["images"]), batch_size):
        sl = slice(start, start + batch_size)
        K, true_xyz, scale = (torch.from_numpy(split[key][sl]).to(device) for key in ("K", "xyz", "scale"))
        images = torch.from_numpy(np.array(split["images"][sl])).to(device)  # a copy: memory-mapped rows are read-only
        out = model(to_input(images, channels_last), K, true_xyz[:, ROOT, 2], scale)
        xyz.append(out["xyz"].cpu().numpy())
        uv.append(out["uv"].cpu().numpy())
        if with_peaks:
            peaks.append(out["heatmaps"][-1].float().amax((2, 3)).cpu().numpy())
    xyz, uv = np.concatenate(xyz), np.concatenate(uv)
    # Finite weights can still overflow (weights scaled by 1e30): such joints are never a result, and
    # neither are finite ones so far off that the metrics' float32 squares would overflow on them.
    bad = ~((np.abs(xyz) < FAR_M).all((1, 2)) & (np.abs(uv) < FAR_PX).all((1, 2)))  # NaN compares False
    if bad.any():
        raise ValueError(
            f"the model predicts non-finite or absurd joints for {bad.sum()} of {len(bad)} images (first: row "
            f"{int(np.argmax(bad))}); its weights are not those of a trained model"
        )
    return {"xyz": xyz, "uv": uv, **({"peaks": np.concatenate(peaks)} if with_peaks else {})}
