import numpy as np
import pytest
import torch

from handpose.heatmaps import gaussian_heatmaps, hard_argmax, heatmap_to_image, image_to_heatmap, soft_argmax


def test_pixel_mapping_round_trips_and_aligns_centres():
    uv = np.array([[0.0, 0.0], [111.5, 200.25], [223.0, 223.0]])
    back = heatmap_to_image(torch.from_numpy(image_to_heatmap(uv, 224, 64)), 224, 64).numpy()
    np.testing.assert_allclose(back, uv)  # float64: numpy's rtol 1e-7 is far above its rounding
    # The centre of the image is the centre of the heatmap.
    np.testing.assert_allclose(image_to_heatmap(np.array([111.5, 111.5]), 224, 64), [31.5, 31.5])


def test_gaussian_peaks_at_the_projected_joint():
    uv = np.array([[[60.0, 150.0], [10.0, 20.0]]])  # (N=1, J=2, 2) image pixels
    maps = gaussian_heatmaps(uv, 224, 56, sigma=2.0)
    assert maps.shape == (1, 2, 56, 56)
    y, x = np.unravel_index(maps[0, 0].argmax(), maps[0, 0].shape)
    assert (x, y) == (15, 37)  # (60+.5)/4-.5 = 14.6, (150+.5)/4-.5 = 37.1
    assert maps.max() <= 1.0 and maps[0, 0, 37, 15] > 0.9  # there: exp(-(0.375^2 + 0.125^2) / (2 * 2^2)) = 0.98


@pytest.mark.parametrize("centre", [(5.3, 9.7), (12.0, 3.25)])
def test_soft_argmax_recovers_a_subpixel_peak_and_argmax_the_nearest_cell(centre):
    cx, cy = centre
    uv_hm = np.array([[[cx, cy]]])
    maps = torch.from_numpy(gaussian_heatmaps(heatmap_to_image(torch.from_numpy(uv_hm), 64, 16).numpy(), 64, 16, 1.0))
    soft = soft_argmax(maps)
    # Within 0.05 cells: the window of 2 cells about the nearest cell cuts a sigma-1 Gaussian's tails
    # unevenly when its centre is off-cell, a bias of at most ~0.045 cells (over every centre).
    np.testing.assert_allclose(soft[0, 0].numpy(), [cx, cy], atol=0.05)
    np.testing.assert_allclose(hard_argmax(maps)[0, 0].numpy(), [round(cx), round(cy)])


def test_soft_argmax_is_differentiable():
    maps = torch.randn(2, 21, 8, 8, requires_grad=True)
    soft_argmax(maps).sum().backward()
    assert torch.isfinite(maps.grad).all() and maps.grad.abs().sum() > 0
