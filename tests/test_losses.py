"""Loss values worked out by hand on tiny poses, and gradients on degenerate input.

Tolerances: poses are float64 (eps 2.2e-16), so a loss that is 0 by hand comes out within 1e-12 (1e-9
after an SVD: values up to ~100, still thousands of eps); values worked out by hand are small sums that
float32 and float64 hold exactly or nearly, inside pytest.approx's relative 1e-6."""

import math

import pytest
import torch

from handpose import losses
from handpose.losses import Batch
from handpose.skeleton import BONES


def asm(k: int, pca: str = "batch") -> losses.AsmSettings:
    return losses.AsmSettings(k=k, pca=pca, schedule=[1.0])


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
    assert losses.pose_loss(Batch(pred, true)).item() == pytest.approx(9.0)


def test_bone_losses_on_a_hand_scaled_by_two():
    true = straight_hand()
    pred = 2 * true  # every bone twice as long, same direction
    assert losses.bone_length_loss(Batch(pred, true)).item() == pytest.approx(20.0)  # 20 bones x |2 - 1|
    assert losses.bone_direction_loss(Batch(pred, true)).item() == pytest.approx(0.0, abs=1e-12)
    assert losses.cosine_loss(Batch(pred, true)).item() == pytest.approx(0.0, abs=1e-12)


def test_bone_direction_and_cosine_when_one_bone_turns():
    true = straight_hand()
    pred = true.clone()
    pred[0, 4] = pred[0, 3] + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # thumb tip bone turns 90 deg
    # Only bone (3, 4) differs: ||x - y|| = sqrt(2); cos = 0 for it and 1 for the other 19.
    assert losses.bone_direction_loss(Batch(pred, true)).item() == pytest.approx(math.sqrt(2))
    assert losses.cosine_loss(Batch(pred, true)).item() == pytest.approx(1 - 19 / 20)
    assert losses.bone_length_loss(Batch(pred, true)).item() == pytest.approx(0.0, abs=1e-12)


def test_heatmap_loss_sums_over_stacks():
    target = torch.zeros(2, 21, 4, 4)
    pred = [torch.full((2, 21, 4, 4), 0.5), torch.zeros(2, 21, 4, 4)]
    assert losses.heatmap_loss(Batch(heatmaps=pred, true_heatmaps=target)).item() == pytest.approx(21 * 16 * 0.25)


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
        fn(Batch(pred, true))
        for fn in (losses.pose_loss, losses.bone_length_loss, losses.bone_direction_loss, losses.cosine_loss)
    )
    total = total + losses.asm_loss(Batch(pred, true), asm(6))
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(pred.grad).all()


def test_asm_target_clamps_coefficients_to_three_sqrt_lambda():
    torch.manual_seed(0)
    y = torch.randn(16, 21, 3, dtype=torch.float64)
    y[0] *= 50  # an outlier whose coefficients must be clamped
    k = 4
    target = losses.asm_target(y, losses.fit_shape_model(y, k)).reshape(16, -1)
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
    torch.testing.assert_close(losses.asm_target(y, losses.fit_shape_model(y, 6)), y)
    assert losses.asm_loss(Batch(y, y), asm(6)).item() == pytest.approx(0.0, abs=1e-12)


def test_asm_weight_follows_the_papers_five_blocks():
    schedule = [1.0, 0.5, 0.25, 0.1, 0.01]
    settings = losses.AsmSettings(k=6, pca="batch", schedule=schedule)
    weights = [100.0 * settings.weight_factor(e, 100) for e in range(100)]
    assert weights[0] == 100 and weights[19] == 100 and weights[20] == 50
    assert weights[40] == 25 and weights[60] == 10 and weights[99] == 1


def test_dataset_shape_model_clamps_each_batch_to_the_datasets_limits():
    torch.manual_seed(2)
    dataset = torch.randn(200, 21, 3, dtype=torch.float64)
    model = losses.fit_shape_model(dataset, k=5)
    assert model.components.shape == (63, 5) and model.limit.shape == (5,)
    batch = dataset[:4].clone()
    batch[0] *= 40  # far outside the dataset's spread
    target = losses.asm_target(batch, model).reshape(4, -1)
    coeffs = (target - model.mean) @ model.components
    assert (coeffs.abs() <= model.limit + 1e-9).all()
    assert torch.isclose(coeffs[0].abs(), model.limit).any()
    # A batch of one works with a dataset model (no batch statistics needed).
    single = losses.asm_target(batch[:1], model)
    torch.testing.assert_close(single.reshape(1, -1), target[:1])


def test_asm_by_hand_three_poses_one_component():
    # Joint 0's (x, y) carries all the variation: (2, 1), (-2, 1), (0, -2); mean (0, 0).
    # Covariance diag(4, 3): the top component is x with lambda 4 (limit 6, nothing clamps), so
    # k = 1 keeps x and drops y: Y_asm = (2, 0), (-2, 0), (0, 0).
    y = torch.zeros(3, 21, 3, dtype=torch.float64)
    y[:, 0, :2] = torch.tensor([[2.0, 1.0], [-2.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    expected = y.clone()
    expected[:, 0, 1] = 0
    torch.testing.assert_close(losses.asm_target(y, losses.fit_shape_model(y, 1)), expected)
    # L_asm with the truth as prediction: per-pose squared distances 1, 1, 4, averaged over the batch.
    assert losses.asm_loss(Batch(y, y), asm(1)).item() == pytest.approx(2.0)


def test_batch_pca_never_clamps_small_batches():
    # |b_i| <= sqrt(n - 1) sqrt(lambda) < 3 sqrt(lambda) for n <= 10: with the paper's batch of 8 the
    # clamp is inactive and Y_asm is the top-k projection (a reason to offer asm.pca: dataset).
    torch.manual_seed(3)
    y = torch.randn(8, 21, 3, dtype=torch.float64)
    y[0] *= 1000
    model = losses.fit_shape_model(y, k=6)
    coeffs = (y.reshape(8, -1) - model.mean) @ model.components
    assert (coeffs.abs() < model.limit).all()


def test_dataset_pca_is_fitted_once_from_the_training_poses_and_batch_pca_is_not():
    torch.manual_seed(4)
    train = torch.randn(50, 21, 3, dtype=torch.float64)
    assert asm(3).fitted(train)._shape_model is None
    fitted = asm(3, "dataset").fitted(train)
    torch.testing.assert_close(fitted._shape_model.mean, losses.fit_shape_model(train, 3).mean)
    batch = train[:4] * 20
    expected = losses.squared_error(batch, losses.asm_target(batch, losses.fit_shape_model(train, 3)))
    assert losses.asm_loss(Batch(batch, batch), fitted) == expected


def test_under_several_processes_the_batch_pca_is_of_the_whole_batch():
    torch.manual_seed(5)
    everyone = torch.randn(8, 21, 3, dtype=torch.float64)
    mine = everyone[:4]
    shared = losses.asm_loss(Batch(mine + 0.1, mine, gather=lambda _: everyone), asm(2))
    alone = losses.asm_loss(Batch(mine + 0.1, mine), asm(2))
    expected = losses.squared_error(mine + 0.1, losses.asm_target(mine, losses.fit_shape_model(everyone, 2)))
    assert shared == expected and shared != alone


@pytest.mark.parametrize("name", list(losses.TERMS))
def test_every_registered_term_is_zero_at_the_truth_positive_elsewhere_and_has_its_formula(name):
    torch.manual_seed(6)
    true = straight_hand().repeat(4, 1, 1) + 0.2 * torch.randn(4, 21, 3, dtype=torch.float64)
    maps = torch.rand(4, 21, 8, 8, dtype=torch.float64)
    term = losses.TERMS[name]
    settings = None if term.settings is None else asm(6) if name == "asm" else term.settings()
    off = true + 0.3 * torch.randn_like(true)
    at_truth = losses.value(name, Batch(true, true, [maps, maps], maps), settings)
    elsewhere = losses.value(name, Batch(off, true, [maps + 0.5, maps], maps), settings)
    assert at_truth.item() == pytest.approx(0.0, abs=1e-9) and elsewhere.item() > 0
    assert term.formula
