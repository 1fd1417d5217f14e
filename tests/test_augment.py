import numpy as np
import pytest

from handpose.augment import roll, roll_matrices, view
from handpose.camera import FRAME_SIZE, PRINCIPAL_POINT, intrinsics, project


def blob_image(uv: np.ndarray, size: int) -> np.ndarray:
    """A dark (size x size) image with one bright 3x3 blob at 224-frame pixel `uv`."""
    image = np.zeros((size, size, 3), np.uint8)
    x, y = np.round((uv + 0.5) * size / FRAME_SIZE - 0.5).astype(int)
    image[y - 1 : y + 2, x - 1 : x + 2] = 255
    return image


@pytest.mark.parametrize("degrees", [0.0, 30.0, 90.0, -135.0])
def test_rolled_joints_project_where_the_rolled_image_shows_them(degrees):
    K = intrinsics(480.0, 480.0, *PRINCIPAL_POINT)[None].astype(np.float32)
    xyz = np.array([[[0.05, -0.03, 0.6], [0.0, 0.0, 0.5]]], np.float32)
    uv = project(xyz, K)[0]
    image = blob_image(uv[0], 112)[None]
    rolled_image, rolled_xyz = roll(image, xyz, K, np.radians([degrees]))
    # 3D: a rotation about the optical axis keeps depths and bone lengths. In float32 (eps 1.2e-7) a depth
    # comes out exact (R's last row is 0, 0, 1; a micron is room); a length goes through the rounded cos
    # and sin, two products, a sum and a norm, each within eps: rtol 1e-6 (8 eps), not numpy's 1e-7.
    np.testing.assert_allclose(rolled_xyz[..., 2], xyz[..., 2], atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(rolled_xyz[0, 0] - rolled_xyz[0, 1]), np.linalg.norm(xyz[0, 0] - xyz[0, 1]), rtol=1e-6
    )
    # 2D: the joint on the optical axis stays put, the other turns about the principal point; 1e-3 px is
    # float32's rounding of ~100 px coordinates (~1e-5 px an operation) with room, and far below a pixel.
    rolled_uv = project(rolled_xyz, K)[0]
    np.testing.assert_allclose(rolled_uv[1], PRINCIPAL_POINT, atol=1e-3)
    offset = uv[0] - PRINCIPAL_POINT
    angle = np.radians(degrees)
    turned = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ offset
    np.testing.assert_allclose(rolled_uv[0] - PRINCIPAL_POINT, turned, atol=1e-3)
    # The image moved with the joint: the blob's centre of brightness is at its new projection, within 1 px:
    # the blob is drawn at the nearest pixel (up to 0.5 px off in x and in y, 0.71 px in all), and bilinear
    # resampling keeps a blob's centre of brightness.
    weight = rolled_image[0, ..., 0].astype(float)
    ys, xs = np.mgrid[:112, :112]
    centre = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    expected = (rolled_uv[0] + 0.5) * 112 / FRAME_SIZE - 0.5
    assert np.linalg.norm(centre - expected) < 1.0, (centre, expected)


def test_roll_keeps_the_image_size_and_type():
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    K = np.repeat(intrinsics(400.0, 400.0, *PRINCIPAL_POINT)[None], 3, 0).astype(np.float32)
    out, _ = roll(images, np.ones((3, 21, 3), np.float32), K, np.zeros(3))
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)  # no roll, no change


@pytest.mark.parametrize("degrees, zoom", [(20.0, 1.0), (0.0, 0.85), (-20.0, 1.15)])
def test_a_view_shows_each_joint_where_its_camera_projects_it(degrees, zoom):
    K = intrinsics(480.0, 480.0, 100.0, 120.0)[None].astype(np.float32)  # off-centre: the view turns about it
    xyz = np.array([[[0.05, -0.03, 0.6]]], np.float32)
    image = blob_image(project(xyz, K)[0, 0], 112)[None]
    seen, view_K = view(image, K, degrees, zoom)
    assert seen.shape == image.shape and seen.dtype == np.uint8
    # The view's camera: the same principal point, the focal length times the zoom.
    np.testing.assert_allclose(view_K[0], K[0] * [[zoom, 1, 1], [1, zoom, 1], [1, 1, 1]], rtol=1e-6)
    # Its joints are the image camera's rolled (roll_matrices' R, as inference.infer undoes it): the blob's
    # centre of brightness is where they project, within 1 px as in the test above.
    rolled = xyz @ roll_matrices(np.radians([degrees])).transpose(0, 2, 1)
    weight = seen[0, ..., 0].astype(float)
    ys, xs = np.mgrid[:112, :112]
    centre = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    expected = (project(rolled, view_K)[0, 0] + 0.5) * 112 / FRAME_SIZE - 0.5
    assert np.linalg.norm(centre - expected) < 1.0, (centre, expected)
