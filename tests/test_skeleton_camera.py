import numpy as np
import torch

from handpose import camera
from handpose.skeleton import BONES, FINGER_JOINTS, JOINT_NAMES, NUM_BONES, NUM_JOINTS


def test_skeleton_is_freihand_order():
    assert NUM_JOINTS == 21 and NUM_BONES == 20
    assert JOINT_NAMES[0] == "wrist" and JOINT_NAMES[1] == "thumb1" and JOINT_NAMES[20] == "pinky4"
    assert BONES[:5] == ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5))
    assert BONES[-1] == (19, 20)
    # Every non-root joint is the child of exactly one bone; every parent precedes its child.
    assert sorted(c for _, c in BONES) == list(range(1, 21))
    assert all(p < c for p, c in BONES)
    assert FINGER_JOINTS["middle"] == (9, 10, 11, 12)


def _random_hand(rng, n):
    xyz = rng.normal(0, 0.04, (n, 21, 3))
    xyz[..., 2] += rng.uniform(0.4, 0.95, (n, 1))
    K = np.zeros((n, 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = rng.uniform(375, 600, n)
    K[:, :2, 2], K[:, 2, 2] = 112, 1
    return xyz, K


def test_lift_inverts_project_numpy_and_torch():
    xyz, K = _random_hand(np.random.default_rng(0), 5)
    uv = camera.project(xyz, K)
    # float64 (eps 2.2e-16) on metres below 1: a projection and a lift round by ~1e-16 m; 1e-12 m is room.
    np.testing.assert_allclose(camera.lift(uv, xyz[..., 2], K), xyz, atol=1e-12)
    t = camera.lift(torch.from_numpy(uv), torch.from_numpy(xyz[..., 2]), torch.from_numpy(K))
    np.testing.assert_allclose(t.numpy(), xyz, atol=1e-12)


def test_project_known_point():
    K = np.array([[500.0, 0, 112], [0, 400, 100], [0, 0, 1]])
    uv = camera.project(np.array([[0.1, -0.05, 0.5]]), K)
    np.testing.assert_allclose(uv, [[112 + 500 * 0.2, 100 - 400 * 0.1]])  # float64: rtol 1e-7 is room


def test_bone_finger_matches_the_finger_joints():
    from handpose.skeleton import BONE_FINGER, FINGERS

    assert len(BONE_FINGER) == NUM_BONES
    for (_, child), finger in zip(BONES, BONE_FINGER):
        assert child in FINGER_JOINTS[FINGERS[finger]]


def test_intrinsics_single_and_stacked():
    np.testing.assert_array_equal(camera.intrinsics(500, 400, 112, 100), [[500, 0, 112], [0, 400, 100], [0, 0, 1]])
    stack = camera.intrinsics(np.array([375.0, 600.0]), np.array([375.0, 600.0]), 112, 112)
    assert stack.shape == (2, 3, 3) and stack[1, 1, 1] == 600 and stack[0, 0, 2] == 112
