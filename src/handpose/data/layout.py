"""The FreiHAND v2 file layout: the one definition shared by its reader (freihand.py) and its writer (synthetic).

    root/training_xyz.json         P x 21 x 3 joints, metres, camera space
    root/training_K.json           P x 3 x 3 intrinsics
    root/training_scale.json       P floats (length of the bone skeleton.SCALE_BONE)
    root/training_visibility.json  P x 21 visibility codes below (synthetic data only)
    root/training/rgb/%08d.jpg     N = k * P images; image v * P + i shows pose i
    root/training/mask/%08d.jpg    hand masks, one per pose

Real FreiHAND repeats its P poses k = 4 times with new backgrounds and colours; the synthetic data has k = 1.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TypeVar

import numpy as np

XYZ_FILE = "training_xyz.json"
K_FILE = "training_K.json"
SCALE_FILE = "training_scale.json"
VISIBILITY_FILE = "training_visibility.json"

# Per-joint visibility codes of the synthetic data; VISIBILITY_NAMES[code] names each.
VISIBLE, SELF_OCCLUDED, OBJECT_OCCLUDED = 0, 1, 2
VISIBILITY_NAMES = ("visible", "self_occluded", "object_occluded")

ImageIds = TypeVar("ImageIds", int, np.ndarray)


Root = TypeVar("Root", Path, zipfile.Path)  # a folder, or the same folder inside a zip archive


def _as_root(root: str | Root) -> Root:
    return Path(root) if isinstance(root, str) else root


def rgb_dir(root: str | Root) -> Root:
    return _as_root(root) / "training" / "rgb"


def mask_dir(root: str | Root) -> Root:
    return _as_root(root) / "training" / "mask"


def rgb_path(root: str | Root, image_index: int) -> Root:
    return rgb_dir(root) / f"{image_index:08d}.jpg"


def mask_path(root: str | Root, pose_index: int) -> Root:
    return mask_dir(root) / f"{pose_index:08d}.jpg"


def pose_id(image_ids: ImageIds, num_poses: int) -> ImageIds:
    """The pose each image shows: FreiHAND repeats its P poses with new backgrounds, so image v * P + i shows pose i."""
    return image_ids % num_poses
