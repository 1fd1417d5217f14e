"""The paper's loss terms as small pure functions over batched tensors.

Each term is summed over joints / bones / pixels, as in the paper, and averaged over the batch
so that its size does not depend on the batch size. Poses are (B, 21, 3).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from handpose.skeleton import BONE_CHILDREN, BONE_PARENTS

COS_EPS = 1e-8  # the paper's epsilon in the cosine similarity
DIR_EPS = 1e-8  # keeps a zero-length bone's direction finite


def heatmap_loss(predicted: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """L_hm: squared error over every stack's heatmaps (intermediate supervision)."""
    return sum(((p.float() - target) ** 2).sum((1, 2, 3)).mean() for p in predicted)


def pose_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """L_pose = sum_j ||phi_j - phi_hat_j||^2."""
    return ((pred - true) ** 2).sum((1, 2)).mean()


def bone_vectors(pose: torch.Tensor) -> torch.Tensor:
    """(B, 21, 3) joints -> (B, 20, 3) child - parent vectors."""
    return pose[:, list(BONE_CHILDREN)] - pose[:, list(BONE_PARENTS)]


def bone_length_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """L_len = sum_bones | ||b|| - ||b_hat|| |."""
    lengths = [torch.linalg.vector_norm(bone_vectors(p), dim=-1) for p in (pred, true)]
    return (lengths[0] - lengths[1]).abs().sum(1).mean()


def bone_direction_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """L_dir = sum_bones || b/||b|| - b_hat/||b_hat|| ||.

    The public baseline code normalises after a `view` that mixes x, y, z across bones; this is
    the formula as written in the paper.
    """
    units = []
    for pose in (pred, true):
        bones = bone_vectors(pose)
        units.append(bones / torch.linalg.vector_norm(bones, dim=-1, keepdim=True).clamp_min(DIR_EPS))
    return torch.linalg.vector_norm(units[0] - units[1], dim=-1).sum(1).mean()


def cosine_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """L_cos = 1 - mean cos(b_pred, b_true), cos = x1.x2 / max(||x1|| ||x2||, 1e-8)."""
    bp, bt = bone_vectors(pred), bone_vectors(true)
    norms = torch.linalg.vector_norm(bp, dim=-1) * torch.linalg.vector_norm(bt, dim=-1)
    return 1 - ((bp * bt).sum(-1) / norms.clamp_min(COS_EPS)).mean()


class ShapeModel(NamedTuple):
    """Top-k principal components of flattened poses: mean (1, 63), components V (63, k), and the
    coefficient limits 3 sqrt(lambda) (k,)."""

    mean: torch.Tensor
    components: torch.Tensor
    limit: torch.Tensor


def fit_shape_model(poses: torch.Tensor, k: int) -> ShapeModel:
    """PCA of (N, 21, 3) poses (N >= 2): eigenvectors of the covariance, lambda = s^2 / (N - 1)."""
    n = poses.shape[0]
    y = poses.detach().reshape(n, -1).double()
    mean = y.mean(0, keepdim=True)
    _, s, vt = torch.linalg.svd(y - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    return ShapeModel(mean, vt[:k].T, 3 * torch.sqrt(s[:k] ** 2 / (n - 1)))


def asm_target(true: torch.Tensor, k: int, shape_model: ShapeModel | None = None) -> torch.Tensor:
    """Active-shape-model ground truth Y_asm = mean + clamp(b) V^T with b = (Y - mean) V, each
    coefficient clamped to +-3 sqrt(lambda). The components come from the batch itself (the
    paper) unless a `shape_model` fitted on the whole training split is given (ASM-Net)."""
    b = true.shape[0]
    if shape_model is None:
        if b < 2:  # a single pose has no variance to model: the ASM pose is the pose itself
            return true
        shape_model = fit_shape_model(true, k)
    mean, v, limit = (t.to(true.device) for t in shape_model)
    y = true.detach().reshape(b, -1).double()
    coeffs = torch.maximum(torch.minimum((y - mean) @ v, limit), -limit)
    return (mean + coeffs @ v.T).reshape(true.shape).to(true.dtype)


def asm_loss(pred: torch.Tensor, true: torch.Tensor, k: int, shape_model: ShapeModel | None = None) -> torch.Tensor:
    """L_asm = sum (Y_pred - Y_asm)^2."""
    return pose_loss(pred, asm_target(true, k, shape_model))


def asm_weight(initial: float, schedule: list[float], epoch: int, epochs: int) -> float:
    """lambda_asm: `initial` times the schedule's factor for the block of epochs `epoch` is in.

    The epochs split into len(schedule) equal blocks (the paper: 100, 50, 25, 10, 1).
    """
    block = min(epoch * len(schedule) // max(epochs, 1), len(schedule) - 1)
    return initial * schedule[block]


POSE_LOSSES = {"pose": pose_loss, "len": bone_length_loss, "dir": bone_direction_loss, "cos": cosine_loss}


def loss_terms(
    names: list[str],
    pred_heatmaps: list[torch.Tensor],
    true_heatmaps: torch.Tensor,
    pred_pose: torch.Tensor,
    true_pose: torch.Tensor,
    asm_k: int = 6,
    shape_model: ShapeModel | None = None,
) -> dict[str, torch.Tensor]:
    """The unweighted value of each named term (config.LOSS_TERMS)."""
    terms = {}
    for name in names:
        if name == "hm":
            terms[name] = heatmap_loss(pred_heatmaps, true_heatmaps)
        elif name == "asm":
            terms[name] = asm_loss(pred_pose, true_pose, asm_k, shape_model)
        else:
            terms[name] = POSE_LOSSES[name](pred_pose, true_pose)
    return terms
