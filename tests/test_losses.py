"""Loss values worked out by hand on tiny poses, and gradients on degenerate input."""

import math

import pytest
import torch

from handpose import losses
from handpose.skeleton import BONES


def straight_hand() -> torch.Tensor:
    """Every bone is the unit x vector: joint positions follow from the bone list."""
    pose = torch.zeros(1, 21, 3, dtype=torch.float64)
    for parent, child in BONES:
        pose[0, child] = pose[0, parent] + torch.tensor([1.0, 0, 0], dtype=torch.float64)
    return pose


def test_pose_loss_sums_squares_over_joints_and_averages_over_batch():
    true = torch.zeros(2, 21, 3)
    pred = true.clone()
    pred[0, 3] = torch.tensor([1.0, 2.0, 2.0])  # 9
    pred[1, 0, 0] = 3.0  # 9
    assert losses.pose_loss(pred, true).item() == pytest.approx(9.0)


def test_bone_losses_on_a_hand_scaled_by_two():
    true = straight_hand()
    pred = 2 * true  # every bone twice as long, same direction
    assert losses.bone_length_loss(pred, true).item() == pytest.approx(20.0)  # 20 bones x |2 - 1|
    assert losses.bone_direction_loss(pred, true).item() == pytest.approx(0.0, abs=1e-12)
    assert losses.cosine_loss(pred, true).item() == pytest.approx(0.0, abs=1e-12)


def test_bone_direction_and_cosine_when_one_bone_turns():
    true = straight_hand()
    pred = true.clone()
    pred[0, 4] = pred[0, 3] + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # thumb tip bone turns 90 deg
    # Only bone (3, 4) differs: ||x - y|| = sqrt(2); cos = 0 for it and 1 for the other 19.
    assert losses.bone_direction_loss(pred, true).item() == pytest.approx(math.sqrt(2))
    assert losses.cosine_loss(pred, true).item() == pytest.approx(1 - 19 / 20)
    assert losses.bone_length_loss(pred, true).item() == pytest.approx(0.0, abs=1e-12)


def test_heatmap_loss_sums_over_stacks():
    target = torch.zeros(2, 21, 4, 4)
    pred = [torch.full((2, 21, 4, 4), 0.5), torch.zeros(2, 21, 4, 4)]
    assert losses.heatmap_loss(pred, target).item() == pytest.approx(21 * 16 * 0.25)


@pytest.mark.parametrize("case", ["equal", "zero_bone", "batch_of_1", "identical_batch"])
def test_gradients_are_finite_on_degenerate_input(case):
    true = straight_hand().repeat(3, 1, 1) + 0.1 * torch.randn(3, 21, 3, dtype=torch.float64)
    pred = true.clone()
    if case == "zero_bone":
        pred[:, 2] = pred[:, 1]
        true = true.clone()
        true[:, 2] = true[:, 1]
    elif case == "batch_of_1":
        pred, true = pred[:1] + 0.01, true[:1]
    elif case == "identical_batch":
        true = true[:1].repeat(3, 1, 1)
        pred = true + 0.01
    pred = pred.clone().requires_grad_(True)
    total = sum(
        fn(pred, true)
        for fn in (losses.pose_loss, losses.bone_length_loss, losses.bone_direction_loss, losses.cosine_loss)
    )
    total = total + losses.asm_loss(pred, true, k=6)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(pred.grad).all()


def test_asm_target_clamps_coefficients_to_three_sqrt_lambda():
    torch.manual_seed(0)
    y = torch.randn(16, 21, 3, dtype=torch.float64)
    y[0] *= 50  # an outlier whose coefficients must be clamped
    k = 4
    target = losses.asm_target(y, k).reshape(16, -1)
    flat = y.reshape(16, -1)
    mean = flat.mean(0)
    _, s, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    limit = 3 * torch.sqrt(s[:k] ** 2 / 15)
    coeffs = (target - mean) @ vt[:k].T
    assert (coeffs.abs() <= limit + 1e-9).all()
    assert (coeffs.abs() >= limit - 1e-9).any()  # the outlier really was clamped
    # The reconstruction lies in the span of the top-k components.
    torch.testing.assert_close(mean + coeffs @ vt[:k], target)


def test_asm_target_is_the_truth_when_k_covers_all_variance_and_nothing_clamps():
    torch.manual_seed(1)
    basis = torch.randn(2, 63, dtype=torch.float64)
    y = (
        torch.tensor([[-1.0, 0.5], [1.0, 0.5], [0.0, -1.0], [0.5, 0.0], [-0.5, 0.0]], dtype=torch.float64) @ basis
    ).reshape(5, 21, 3)
    torch.testing.assert_close(losses.asm_target(y, k=6), y)
    assert losses.asm_loss(y, y, k=6).item() == pytest.approx(0.0, abs=1e-12)


def test_asm_weight_follows_the_papers_five_blocks():
    schedule = [1.0, 0.5, 0.25, 0.1, 0.01]
    weights = [losses.asm_weight(100.0, schedule, e, 100) for e in range(100)]
    assert weights[0] == 100 and weights[19] == 100 and weights[20] == 50
    assert weights[40] == 25 and weights[60] == 10 and weights[99] == 1


def test_dataset_shape_model_clamps_each_batch_to_the_datasets_limits():
    torch.manual_seed(2)
    dataset = torch.randn(200, 21, 3, dtype=torch.float64)
    model = losses.fit_shape_model(dataset, k=5)
    assert model.components.shape == (63, 5) and model.limit.shape == (5,)
    batch = dataset[:4].clone()
    batch[0] *= 40  # far outside the dataset's spread
    target = losses.asm_target(batch, k=5, shape_model=model).reshape(4, -1)
    coeffs = (target - model.mean) @ model.components
    assert (coeffs.abs() <= model.limit + 1e-9).all()
    assert torch.isclose(coeffs[0].abs(), model.limit).any()
    # A batch of one works with a dataset model (no batch statistics needed).
    single = losses.asm_target(batch[:1], k=5, shape_model=model)
    torch.testing.assert_close(single.reshape(1, -1), target[:1])


def test_asm_by_hand_three_poses_one_component():
    # Joint 0's (x, y) carries all the variation: (2, 1), (-2, 1), (0, -2); mean (0, 0).
    # Covariance diag(4, 3): the top component is x with lambda 4 (limit 6, nothing clamps), so
    # k = 1 keeps x and drops y: Y_asm = (2, 0), (-2, 0), (0, 0).
    y = torch.zeros(3, 21, 3, dtype=torch.float64)
    y[:, 0, :2] = torch.tensor([[2.0, 1.0], [-2.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    expected = y.clone()
    expected[:, 0, 1] = 0
    torch.testing.assert_close(losses.asm_target(y, k=1), expected)
    # L_asm with the truth as prediction: per-pose squared distances 1, 1, 4, averaged over the batch.
    assert losses.asm_loss(y, y, k=1).item() == pytest.approx(2.0)


def test_batch_pca_never_clamps_small_batches():
    # |b_i| <= sqrt(n - 1) sqrt(lambda) < 3 sqrt(lambda) for n <= 10: with the paper's batch of 8 the
    # clamp is inactive and Y_asm is the top-k projection (a reason to offer asm.pca: dataset).
    torch.manual_seed(3)
    y = torch.randn(8, 21, 3, dtype=torch.float64)
    y[0] *= 1000
    model = losses.fit_shape_model(y, k=6)
    coeffs = (y.reshape(8, -1) - model.mean) @ model.components
    assert (coeffs.abs() < model.limit).all()
