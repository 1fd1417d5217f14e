"""The 21-joint hand skeleton in FreiHAND order: the one definition for the whole project."""

from __future__ import annotations

import numpy as np

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")

# Joint 0 is the wrist; each finger then has 4 joints from base to tip.
JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(f"{finger}{k}" for finger in FINGERS for k in range(1, 5))
NUM_JOINTS = len(JOINT_NAMES)  # 21
ROOT = 0

# (parent, child) for the 20 bones: wrist->finger base, then along each finger.
BONES: tuple[tuple[int, int], ...] = tuple(
    (0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4)
)
NUM_BONES = len(BONES)  # 20
BONE_PARENTS: tuple[int, ...] = tuple(p for p, _ in BONES)
BONE_CHILDREN: tuple[int, ...] = tuple(c for _, c in BONES)

# Joints of each finger, base to tip.
FINGER_JOINTS: dict[str, tuple[int, ...]] = {
    finger: tuple(range(1 + 4 * f, 5 + 4 * f)) for f, finger in enumerate(FINGERS)
}

# Which finger (index into FINGERS) each bone belongs to, in BONES order: 4 bones per finger.
BONE_FINGER: tuple[int, ...] = tuple(f for f in range(5) for _ in range(4))

# FreiHAND's `training_scale` is the length of the bone between these joints (middle MCP->PIP).
SCALE_BONE: tuple[int, int] = (9, 10)


def hand_scale(xyz: np.ndarray) -> np.ndarray:
    """(..., 21, 3) joints -> (...) the hand's scale: the length of SCALE_BONE, in xyz's units."""
    return np.linalg.norm(xyz[..., SCALE_BONE[0], :] - xyz[..., SCALE_BONE[1], :], axis=-1)
