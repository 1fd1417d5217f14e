import numpy as np
import pytest

from handpose.metrics import (
    auc,
    converged_epoch,
    late_change_pct,
    pck_curve,
    per_finger_errors_mm,
    pose_metrics,
    procrustes_align,
)


def hands(n=4, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0, 0.04, (n, 21, 3))
    xyz[..., 2] += 0.6
    return xyz


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_identical_poses_score_perfectly():
    m = pose_metrics(hands(), hands())
    # float64 throughout: where the answer is 0 mm, Procrustes's SVD leaves ~1e-13 mm (1e-9 here and below).
    assert m["pose_error_mm"] == 0 and m["mpjpe_mm"] == 0 and m["pa_mpjpe_mm"] == pytest.approx(0, abs=1e-9)
    assert m["pck_20mm"] == 1 and m["auc_pck_0_50"] == pytest.approx(1.0)  # 0 mm is within every threshold (<=)


def test_translation_is_forgiven_by_mpjpe_not_by_pose_error():
    true = hands()
    m = pose_metrics(true + [0.01, 0.0, 0.0], true)
    assert m["pose_error_mm"] == pytest.approx(10.0)
    assert m["mpjpe_mm"] == pytest.approx(0, abs=1e-9)


def test_rotated_scaled_copy_has_zero_pa_mpjpe():
    true = hands()
    pred = 1.3 * true @ rotation([1, 2, 3], 0.7).T + 0.05
    assert pose_metrics(pred, true)["pa_mpjpe_mm"] == pytest.approx(0, abs=1e-6)  # float64: ~1e-13 mm left
    np.testing.assert_allclose(procrustes_align(pred, true), true, atol=1e-9)  # metres: ~1e-16 left


def test_pa_auc_is_the_pck_area_after_alignment_as_freihand_reports_it():
    true = hands(n=50)
    noisy = true + np.random.default_rng(1).normal(0, 0.004, true.shape)  # ~6 mm per joint
    moved = 1.3 * noisy @ rotation([1, 2, 3], 0.7).T + 0.05  # the same shape, elsewhere, bigger
    aligned = pose_metrics(noisy, true)
    m = pose_metrics(moved, true)
    # Unaligned, every joint is centimetres off (AUC ~0); aligned, errors of ~6.4 mm give 1 - 6.4 / 50 = 0.87.
    assert m["auc_pck_0_50"] < 0.05 < 0.8 < m["pa_auc_0_50"]
    # The same counts: one joint crossing one threshold would move the area by 1 / (50 * 21 * 99) = 1e-5.
    assert m["pa_auc_0_50"] == pytest.approx(aligned["pa_auc_0_50"], abs=1e-6)
    assert aligned["pa_auc_0_50"] >= aligned["auc_pck_0_50"] - 1e-9  # alignment only removes error


def test_pa_does_not_reflect():
    true = hands()
    mirrored = true * [-1, 1, 1]
    assert pose_metrics(mirrored, true)["pa_mpjpe_mm"] > 1.0  # off by the hand's own size (tens of mm)


def test_pck_and_auc_on_a_constructed_error_distribution():
    errors = np.array([[5.0, 15.0, 25.0, 100.0]])  # mm
    curve = pck_curve(errors, np.array([0.0, 10.0, 20.0, 30.0]))
    np.testing.assert_allclose(curve, [0, 0.25, 0.5, 0.75])
    # Uniform errors on [0, 50] give a linear PCK curve: area 1/2.
    uniform = np.linspace(0, 50, 10001)[None]
    # The PCK of 10001 evenly spaced errors is within 2e-4 of t / 50, and the trapezoid rule is exact on a
    # line: 1e-3 leaves room and still sees a slip of one interval in 99 (0.005).
    assert auc(pck_curve(uniform)) == pytest.approx(0.5, abs=1e-3)


def test_per_finger_errors():
    true = hands()
    pred = true.copy()
    pred[:, 1:5] += [0.002, 0, 0]  # thumb off by 2 mm
    errs = per_finger_errors_mm(pred, true)
    assert errs["thumb"] == pytest.approx(2.0) and errs["pinky"] == 0


def test_errors_by_visibility():
    from handpose.metrics import errors_by_visibility_mm

    true = hands(2)
    pred = true.copy()
    visibility = np.zeros((2, 21), int)
    visibility[0, 5] = 1
    pred[0, 5] += [0.006, 0, 0]  # the one self-occluded joint is 6 mm off
    errs = errors_by_visibility_mm(pred, true, visibility)
    assert errs == {"visible": 0.0, "self_occluded": pytest.approx(6.0), "object_occluded": None}


def test_late_change_is_the_largest_epoch_to_epoch_change_over_the_last_quarter():
    # 8 epochs: the last quarter is epochs 7 and 8, so the changes 6->7 (-10%) and 7->8 (-2.2%) count,
    # and the larger jump 1->2 (-50%) does not.
    assert late_change_pct([100, 50, 9, 8, 7, 5, 4.5, 4.4]) == pytest.approx(10.0)
    assert late_change_pct([10, 10, 10, 10.3]) == pytest.approx(3.0)  # a rise counts too
    assert late_change_pct([5, 4]) == pytest.approx(20.0)
    assert late_change_pct([5]) == 0.0


def test_converged_epoch_is_where_the_error_settles_within_5_percent_of_its_final_value():
    assert converged_epoch([100, 60, 52, 55, 50.5, 50]) == 5  # 55 is 10% off: it settles at epoch 5
    assert converged_epoch([100, 60, 52, 51, 50.5, 50]) == 3
    assert converged_epoch([100, 50]) == 2
    assert converged_epoch([50]) == 1
