"""Pose metrics: one definition each. Inputs are (N, 21, 3) camera-space joints in metres."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from handpose.data.layout import VISIBILITY_NAMES
from handpose.skeleton import FINGER_JOINTS, JOINT_NAMES, ROOT

MM = 1000.0
PCK_THRESHOLDS_MM = np.linspace(0, 50, 100)


def joint_errors_mm(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(N, 21) Euclidean distance per joint, in mm."""
    return np.linalg.norm(pred - true, axis=-1) * MM


def uv_error_px(pred_uv: np.ndarray, true_uv: np.ndarray) -> float:
    """The 2D error: mean per-joint distance in the image's pixels (FreiHAND's 224 frame)."""
    return float(np.linalg.norm(pred_uv - true_uv, axis=-1).mean())


def pose_error_mm(pred: np.ndarray, true: np.ndarray) -> float:
    """The paper's "3D pose error": mean per-joint distance in camera space (ground-truth root depth given)."""
    return float(joint_errors_mm(pred, true).mean())


def root_relative(pose: np.ndarray) -> np.ndarray:
    return pose - pose[:, ROOT : ROOT + 1]


def procrustes_align(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Align each predicted pose to the truth with the best rotation, scale and translation
    (FreiHAND's evaluation: centre, normalise, orthogonal Procrustes, rescale)."""
    mu_p, mu_t = pred.mean(1, keepdims=True), true.mean(1, keepdims=True)
    p, t = pred - mu_p, true - mu_t
    norm_p = np.linalg.norm(p, axis=(1, 2), keepdims=True)
    norm_t = np.linalg.norm(t, axis=(1, 2), keepdims=True)
    p, t = p / np.maximum(norm_p, 1e-12), t / np.maximum(norm_t, 1e-12)
    u, s, vt = np.linalg.svd(np.swapaxes(p, 1, 2) @ t)  # (N, 3, 3)
    rot = u @ vt
    # Rotations only: flip the weakest axis where the best orthogonal map is a reflection.
    flip = np.linalg.det(rot) < 0
    u[flip, :, -1] *= -1
    s[flip, -1] *= -1
    rot = u @ vt
    return (p @ rot) * s.sum(1)[:, None, None] * norm_t + mu_t


def pck_curve(errors_mm: np.ndarray, thresholds_mm: np.ndarray = PCK_THRESHOLDS_MM) -> np.ndarray:
    """Fraction of joints within each threshold."""
    flat = errors_mm.reshape(-1)
    return (flat[None, :] <= thresholds_mm[:, None]).mean(1)


def auc(curve: np.ndarray, thresholds_mm: np.ndarray = PCK_THRESHOLDS_MM) -> float:
    """Area under a PCK curve, normalised by the threshold range (1.0 = every joint at 0 mm)."""
    return float(np.trapezoid(curve, thresholds_mm) / (thresholds_mm[-1] - thresholds_mm[0]))


def pose_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Every headline metric for a set of predictions."""
    errors = joint_errors_mm(pred, true)  # the paper's protocol: camera space, ground-truth root depth
    aligned = joint_errors_mm(procrustes_align(pred, true), true)  # FreiHAND's official evaluation
    return {
        "pose_error_mm": pose_error_mm(pred, true),
        "mpjpe_mm": float(joint_errors_mm(root_relative(pred), root_relative(true)).mean()),
        "pa_mpjpe_mm": float(aligned.mean()),
        "auc_pck_0_50": auc(pck_curve(errors)),
        "pa_auc_0_50": auc(pck_curve(aligned)),
        "pck_20mm": float((errors <= 20).mean()),
        "pck_30mm": float((errors <= 30).mean()),
    }


def late_change_pct(test_errors: list[float]) -> float:
    """Stability late in training: the largest change of the test error between consecutive epochs
    whose later epoch is in the last quarter of training, in % of the earlier epoch's error."""
    last_quarter = math.ceil(len(test_errors) / 4)
    later = range(max(1, len(test_errors) - last_quarter), len(test_errors))
    return max((abs(test_errors[i] / test_errors[i - 1] - 1) * 100 for i in later), default=0.0)


def converged_epoch(test_errors: list[float], within: float = 0.05) -> int:
    """Convergence speed (the paper claims m_asm needs about half the epochs): the first epoch
    (1-based) from which the test error stays within `within` (5%) of its final value."""
    final = test_errors[-1]
    inside = [abs(e / final - 1) <= within for e in test_errors]
    first = len(inside)
    while first > 0 and inside[first - 1]:
        first -= 1
    return first + 1


def over_seeds(runs: pd.DataFrame) -> dict[str, float]:
    """One row per seed -> each column's mean, with `<column>_sd` (sample sd) beside it when there are
    several seeds: the one way results are summarised over seeds."""
    summary = runs.mean().to_dict()
    if len(runs) > 1:
        summary |= {f"{key}_sd": value for key, value in runs.std().to_dict().items()}
    return summary


def per_finger_errors_mm(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    errors = joint_errors_mm(pred, true)
    return {finger: float(errors[:, list(joints)].mean()) for finger, joints in FINGER_JOINTS.items()}


def per_joint_errors_mm(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean error of each joint over every pose (and every seed, for stacked (S, N, 21, 3) predictions)."""
    errors = joint_errors_mm(pred, true).reshape(-1, len(JOINT_NAMES)).mean(0)
    return dict(zip(JOINT_NAMES, map(float, errors)))


def errors_by_visibility_mm(pred: np.ndarray, true: np.ndarray, visibility: np.ndarray) -> dict[str, float | None]:
    """Mean joint error over the joints of each visibility code (None where there are none)."""
    errors = joint_errors_mm(pred, true)
    return {
        name: float(errors[visibility == code].mean()) if (visibility == code).any() else None
        for code, name in enumerate(VISIBILITY_NAMES)
    }
