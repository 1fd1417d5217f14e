"""The FreiHAND v2 file layout: the one definition shared by its reader (freihand.py) and its writer (synthetic).

    root/training_xyz.json         P x 21 x 3 joints, metres, camera space
    root/training_K.json           P x 3 x 3 intrinsics
    root/training_scale.json       P floats (length of the bone skeleton.SCALE_BONE)
    root/training_visibility.json  N x 21 visibility codes below, one row per image (synthetic data only)
    root/training_hand.json        N of "right" | "left", one per image (optional: FreiHAND's are all right)
    root/training/rgb/%08d.jpg     N = k * P images; image v * P + i shows pose i
    root/training/mask/%08d.jpg    hand masks, one per pose

Real FreiHAND repeats its P poses k = 4 times with new backgrounds and colours (the synthetic data
has `data.synthetic_versions` of them). Its evaluation archive has the same files under the name
`evaluation` (evaluation_xyz.json, evaluation/rgb/...), one image per pose; every function here takes
the `part` it means.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TypeVar

import numpy as np

TRAINING, EVALUATION = "training", "evaluation"  # FreiHAND_pub_v2.zip's part, FreiHAND_pub_v2_eval.zip's


def labels_file(kind: str, part: str = TRAINING) -> str:
    """The labels file of `kind` (xyz, K, scale, visibility, hand) of a part, e.g. evaluation_K.json."""
    return f"{part}_{kind}.json"


XYZ_FILE, K_FILE, SCALE_FILE, VISIBILITY_FILE = (labels_file(k) for k in ("xyz", "K", "scale", "visibility"))

HANDS = ("right", "left")  # what a hand file may say; the models are trained on right hands

# Per-joint visibility codes of the synthetic data; VISIBILITY_NAMES[code] names each.
VISIBLE, SELF_OCCLUDED, OBJECT_OCCLUDED = 0, 1, 2
VISIBILITY_NAMES = ("visible", "self_occluded", "object_occluded")

ImageIds = TypeVar("ImageIds", int, np.ndarray)


Root = TypeVar("Root", Path, zipfile.Path)  # a folder, or the same folder inside a zip archive


def _as_root(root: str | Root) -> Root:
    return Path(root) if isinstance(root, str) else root


def rgb_dir(root: str | Root, part: str = TRAINING) -> Root:
    return _as_root(root) / part / "rgb"


def mask_dir(root: str | Root, part: str = TRAINING) -> Root:
    return _as_root(root) / part / "mask"


def rgb_path(root: str | Root, image_index: int, part: str = TRAINING) -> Root:
    return rgb_dir(root, part) / f"{image_index:08d}.jpg"


def mask_path(root: str | Root, pose_index: int, part: str = TRAINING) -> Root:
    return mask_dir(root, part) / f"{pose_index:08d}.jpg"


def pose_id(image_ids: ImageIds, num_poses: int) -> ImageIds:
    """The pose each image shows: FreiHAND repeats its P poses with new backgrounds, so image v * P + i shows pose i."""
    return image_ids % num_poses
