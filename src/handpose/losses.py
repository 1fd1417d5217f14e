"""The loss terms: small pure functions over one batch, each registered by name with its formula.

A new term is one function here under `@term(name, formula)`, and its weight under `loss:` in
params.yaml. The variant check, the logged `loss_<name>` column, the charts and the tests over all
terms follow from TERMS. A term with settings of its own declares them beside it (`settings=`, a
TermSettings class); their values are the params.yaml section of the term's name (`asm:` for L_asm).

Each term is summed over joints / bones / pixels, as in the paper, and averaged over the batch so
that its size does not depend on the batch size. Poses are (B, 21, 3), root-relative, in units of
the hand's scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from handpose.config import Number, PositiveInt
from handpose.skeleton import BONE_CHILDREN, BONE_PARENTS

COS_EPS = 1e-8  # the paper's epsilon in the cosine similarity
DIR_EPS = 1e-8  # keeps a zero-length bone's direction finite


@dataclass(frozen=True)
class Batch:
    """What a term sees of one training batch."""

    pose: torch.Tensor | None = None  # predicted joints (B, 21, 3)
    true_pose: torch.Tensor | None = None
    heatmaps: Sequence[torch.Tensor] = ()  # predicted, one (B, 21, H, W) per stack
    true_heatmaps: torch.Tensor | None = None
    # This batch's rows of every process, in rank order (under torchrun a process holds a share of the
    # global batch): for statistics over the whole batch, like L_asm's PCA.
    gather: Callable[[torch.Tensor], torch.Tensor] = field(default=lambda rows: rows)


class TermSettings(BaseModel):
    """A term's own settings (its params.yaml section). The hooks let a term change its weight over
    the epochs and fit something to the training set, without a special case in the training loop."""

    model_config = ConfigDict(extra="forbid")

    def weight_factor(self, epoch: int, epochs: int) -> float:
        """The factor of the term's `loss:` weight in `epoch` (0-based) of `epochs`."""
        return 1.0

    def fitted(self, train_poses: torch.Tensor) -> TermSettings:
        """These settings with whatever the term needs from the training set's (N, 21, 3) poses."""
        return self


@dataclass(frozen=True)
class Term:
    loss: Callable[..., torch.Tensor]  # (Batch) -> scalar, or (Batch, settings) -> scalar
    formula: str
    settings: type[TermSettings] | None = None


TERMS: dict[str, Term] = {}  # in the order of the logged columns


def term(name: str, formula: str, settings: type[TermSettings] | None = None) -> Callable:
    """Register the decorated function as the loss term `name` (the key of its weight in `loss:`)."""

    def register(loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        TERMS[name] = Term(loss, formula, settings)
        return loss

    return register


def value(name: str, batch: Batch, settings: TermSettings | None = None) -> torch.Tensor:
    """The unweighted value of term `name` on `batch`."""
    registered = TERMS[name]
    return registered.loss(batch) if registered.settings is None else registered.loss(batch, settings)


def squared_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return ((pred - true) ** 2).sum((1, 2)).mean()


def bone_vectors(pose: torch.Tensor) -> torch.Tensor:
    """(B, 21, 3) joints -> (B, 20, 3) child - parent vectors."""
    return pose[:, list(BONE_CHILDREN)] - pose[:, list(BONE_PARENTS)]


@term("hm", "sum over stacks, joints and pixels (H_pred - H)^2")
def heatmap_loss(b: Batch) -> torch.Tensor:
    """L_hm: squared error over every stack's heatmaps (intermediate supervision)."""
    return sum(((p.float() - b.true_heatmaps) ** 2).sum((1, 2, 3)).mean() for p in b.heatmaps)


@term("pose", "sum_j ||phi_j - phi_hat_j||^2")
def pose_loss(b: Batch) -> torch.Tensor:
    return squared_error(b.pose, b.true_pose)


@term("len", "sum_bones | ||b|| - ||b_hat|| |")
def bone_length_loss(b: Batch) -> torch.Tensor:
    lengths = [torch.linalg.vector_norm(bone_vectors(p), dim=-1) for p in (b.pose, b.true_pose)]
    return (lengths[0] - lengths[1]).abs().sum(1).mean()


@term("dir", "sum_bones || b/||b|| - b_hat/||b_hat|| ||")
def bone_direction_loss(b: Batch) -> torch.Tensor:
    """The public baseline code normalises after a `view` that mixes x, y, z across bones; this is
    the formula as written in the paper."""
    units = []
    for pose in (b.pose, b.true_pose):
        bones = bone_vectors(pose)
        units.append(bones / torch.linalg.vector_norm(bones, dim=-1, keepdim=True).clamp_min(DIR_EPS))
    return torch.linalg.vector_norm(units[0] - units[1], dim=-1).sum(1).mean()


@term("cos", "1 - mean_bones cos(b, b_hat), cos = x1.x2 / max(||x1|| ||x2||, 1e-8)")
def cosine_loss(b: Batch) -> torch.Tensor:
    bp, bt = bone_vectors(b.pose), bone_vectors(b.true_pose)
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


def asm_target(true: torch.Tensor, shape_model: ShapeModel) -> torch.Tensor:
    """Active-shape-model ground truth Y_asm = mean + clamp(b) V^T with b = (Y - mean) V, each
    coefficient clamped to +-3 sqrt(lambda)."""
    b = true.shape[0]
    mean, v, limit = (t.to(true.device) for t in shape_model)
    y = true.detach().reshape(b, -1).double()
    coeffs = torch.maximum(torch.minimum((y - mean) @ v, limit), -limit)
    return (mean + coeffs @ v.T).reshape(true.shape).to(true.dtype)


class AsmSettings(TermSettings):
    k: PositiveInt  # principal components of the ground truth (paper's code: 6)
    pca: Literal["batch", "dataset"]  # PCA of each batch (the paper) | fitted once on the training split (ASM-Net)
    # Factors of loss.asm in equal blocks of epochs (paper: 100, 50, 25, 10, 1).
    schedule: Annotated[list[Annotated[Number, Field(ge=0, le=1)]], Field(min_length=1)]
    _shape_model: ShapeModel | None = PrivateAttr(None)  # pca: dataset

    def weight_factor(self, epoch: int, epochs: int) -> float:
        """lambda_asm's decay: the factor of the block of epochs `epoch` is in."""
        return self.schedule[min(epoch * len(self.schedule) // max(epochs, 1), len(self.schedule) - 1)]

    def fitted(self, train_poses: torch.Tensor) -> AsmSettings:
        if self.pca == "batch":
            return self
        settings = self.model_copy()
        settings._shape_model = fit_shape_model(train_poses, self.k)
        return settings


@term("asm", "sum_j ||phi_j - ASM(phi_hat)_j||^2, ASM: the clamped PCA reconstruction", settings=AsmSettings)
def asm_loss(b: Batch, settings: AsmSettings) -> torch.Tensor:
    """L_asm: the squared distance to the truth's active-shape-model reconstruction. The components
    come from the whole batch (the paper) unless they were fitted on the training split."""
    shape_model = settings._shape_model
    if shape_model is None:
        everyone = b.gather(b.true_pose)
        if len(everyone) < 2:  # a single pose has no variance to model: the ASM pose is the pose itself
            return squared_error(b.pose, b.true_pose)
        shape_model = fit_shape_model(everyone, settings.k)
    return squared_error(b.pose, asm_target(b.true_pose, shape_model))


def scheduled_weights(weights: dict[str, float], settings: dict[str, TermSettings], epoch: int, epochs: int) -> dict:
    """The `loss:` weights in `epoch` (0-based) of `epochs`: each times its term's weight_factor, the
    one place where a term's schedule is applied."""
    return {t: w * settings[t].weight_factor(epoch, epochs) if t in settings else w for t, w in weights.items()}


def term_settings(name: str, values: dict[str, Any] | None) -> TermSettings | None:
    """Term `name`'s settings from their params section (None for a term that has none)."""
    kind = TERMS[name].settings
    return None if kind is None else kind.model_validate(values or {})
