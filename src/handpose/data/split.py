"""Choose train/test poses and decode their images once into compact arrays."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from handpose.atomic import atomic_path
from handpose.camera import FRAME_SIZE
from handpose.config import DataConfig
from handpose.data.freihand import open_freihand
from handpose.data.layout import pose_id

SPLITS = ("train", "test")


def to_input_size(rgb: np.ndarray, size: int) -> np.ndarray:
    """A decoded image at the model's input size (area averaging: no aliasing when shrinking)."""
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def choose_images(
    num_poses: int,
    num_images: int,
    n_train: int,
    n_test: int,
    seed: int,
    how: str = "random",
    versions: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """Image indices of each split, disjoint by pose: no pose seen in training (under any of its
    backgrounds) is tested, which would otherwise inflate the results. `random` draws the poses by
    `seed`; `paper` takes poses 0..n_train-1 for training and the next n_test for testing (the paper's
    code). Each training pose contributes its image in every one of `versions` (default: all); each
    test pose one of them, at random (`random`) or the first listed (`paper`)."""
    per_pose = num_images // num_poses
    versions = list(range(per_pose)) if versions is None else versions
    if max(versions) >= per_pose:
        raise ValueError(f"data.versions: {versions}, but the dataset has {per_pose} version(s) of each pose")
    if n_train + n_test > num_poses:
        raise ValueError(f"data.n_train + data.n_test = {n_train + n_test} exceeds the {num_poses} poses available")
    rng = np.random.default_rng(seed)
    if how == "paper":
        poses, test_versions = np.arange(n_train + n_test), np.full(n_test, versions[0])
    else:
        poses = rng.permutation(num_poses)[: n_train + n_test]
        test_versions = np.asarray(versions)[rng.integers(len(versions), size=n_train + n_test)][n_train:]
    train = (poses[:n_train, None] + num_poses * np.asarray(versions)[None, :]).reshape(-1)  # v * P + i shows pose i
    return {"train": np.sort(train), "test": np.sort(poses[n_train:] + num_poses * test_versions)}


def write_split(
    dataset: str | Path, out: str | Path, config: DataConfig, input_size: int, progress: bool = True
) -> None:
    """The `split` stage: out/{train,test}.npz with images (N,S,S,3) uint8 RGB at `input_size`, xyz
    (N,21,3) metres, K (N,3,3), scale (N,), image ids, and the original image size (uv stays in its pixels)."""
    data = open_freihand(dataset)
    versions = None if config.versions == "all" else config.versions
    chosen = choose_images(
        data.num_poses, data.num_images, config.n_train, config.n_test, config.seed, config.split, versions
    )
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, ids in chosen.items():
            images = np.empty((len(ids), input_size, input_size, 3), np.uint8)
            for row, i in enumerate(tqdm(ids, desc=f"decode {name}", disable=not progress, mininterval=1.0)):
                rgb = data.read_rgb(int(i))
                if rgb.shape[:2] != (FRAME_SIZE, FRAME_SIZE):  # K and the labels are in this frame's pixels
                    raise ValueError(
                        f"{data.rgb_path(int(i))}: {rgb.shape[1]}x{rgb.shape[0]} image, expected "
                        f"{FRAME_SIZE}x{FRAME_SIZE} (FreiHAND's frame, which K refers to)"
                    )
                images[row] = to_input_size(rgb, input_size)
            poses = pose_id(ids, data.num_poses)
            np.savez(
                tmp / f"{name}.npz",
                images=images,
                xyz=data.xyz[poses],
                K=data.K[poses],
                scale=data.scale[poses],
                image_ids=ids,
                image_size=np.int64(FRAME_SIZE),
            )


def load_split(split_dir: str | Path, name: str) -> dict[str, np.ndarray]:
    """Read one split written by `write_split` into memory."""
    path = Path(split_dir) / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split not found (run the `split` stage)")
    try:
        with np.load(path) as f:
            split = {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable split ({err}); rerun the `split` stage") from None
    missing = {"images", "xyz", "K", "scale", "image_ids", "image_size"} - set(split)
    if missing:
        raise ValueError(f"{path}: not a split written by `handpose split` (no {', '.join(sorted(missing))})")
    return split
