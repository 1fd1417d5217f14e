"""Choose train/test poses and decode their images once into memory-mapped uint8 arrays."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from handpose.atomic import allocated_npy, atomic_path
from handpose.camera import FRAME_SIZE, mirror
from handpose.config import DataConfig, EvalSetConfig
from handpose.data.freihand import FreiHAND, FreiHANDError, open_freihand, read_hands, read_visibility
from handpose.data.images import to_input_size
from handpose.data.layout import EVALUATION, pose_id

SPLITS = ("train", "test")


def choose_images(
    num_poses: int,
    num_images: int,
    n_train: int | None,
    n_test: int,
    seed: int,
    how: str = "random",
    versions: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """Image indices of each split, disjoint by pose: no pose seen in training (under any of its
    backgrounds) is tested, which would otherwise inflate the results. `random` draws the poses by
    `seed`; `paper` takes poses 0..n_train-1 for training and the next n_test for testing (the paper's
    code). Each training pose contributes its image in every one of `versions` (default: all); each
    test pose one of them, at random (`random`) or the first listed (`paper`). n_train None: every
    pose the test does not take; n_test 0: no test here (it comes from the evaluation set)."""
    per_pose = num_images // num_poses
    versions = list(range(per_pose)) if versions is None else versions
    if max(versions) >= per_pose:
        raise ValueError(f"data.versions: {versions}, but the dataset has {per_pose} version(s) of each pose")
    n_train = num_poses - n_test if n_train is None else n_train
    if n_train < 1 or n_train + n_test > num_poses:
        asked = f"data.n_train + data.n_test = {n_train + n_test}" if n_test else f"data.n_train = {n_train}"
        raise ValueError(f"{asked} exceeds the {num_poses} poses available")
    rng = np.random.default_rng(seed)
    if how == "paper":
        poses, test_versions = np.arange(n_train + n_test), np.full(n_test, versions[0])
    else:
        poses = rng.permutation(num_poses)[: n_train + n_test]
        test_versions = np.asarray(versions)[rng.integers(len(versions), size=n_train + n_test)][n_train:]
    train = (poses[:n_train, None] + num_poses * np.asarray(versions)[None, :]).reshape(-1)  # v * P + i shows pose i
    return {"train": np.sort(train), "test": np.sort(poses[n_train:] + num_poses * test_versions)}


def choose_evaluation_images(num_images: int, n_test: int, seed: int, how: str = "random") -> np.ndarray:
    """Image indices of the test split drawn from FreiHAND's evaluation set (one image per pose)."""
    if n_test > num_images:
        raise ValueError(f"data.n_test = {n_test} exceeds the {num_images} images of the evaluation set")
    chosen = np.arange(n_test) if how == "paper" else np.random.default_rng(seed).permutation(num_images)[:n_test]
    return np.sort(chosen)


def _check_disk(folder: Path, images: int, input_size: int) -> None:
    """Refuse a split the disk cannot hold before decoding anything (the arrays are files, not memory)."""
    needed = images * input_size * input_size * 3
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ValueError(
            f"data.n_train: {images:,} images at {input_size} px need {_size(needed)} in {folder}; "
            f"{_size(free)} are free"
        )


def _size(n_bytes: int) -> str:
    """Bytes in the largest decimal unit that keeps a digit before the point: 1.2 MB, 850 kB, 3.4 GB."""
    for unit, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:.3g} {unit}"
    return f"{n_bytes} bytes"


def _decode_into(images: np.ndarray, data: FreiHAND, ids: np.ndarray, desc: str, progress: bool) -> None:
    size = images.shape[1]
    for row, i in enumerate(tqdm(ids, desc=desc, unit="img", disable=not progress, mininterval=1.0)):
        rgb = data.read_rgb(int(i))
        if rgb.shape[:2] != (FRAME_SIZE, FRAME_SIZE):  # K and the labels are in this frame's pixels
            raise ValueError(
                f"{data.rgb_path(int(i))}: {rgb.shape[1]}x{rgb.shape[0]} image, expected "
                f"{FRAME_SIZE}x{FRAME_SIZE} (FreiHAND's frame, which K refers to)"
            )
        images[row] = to_input_size(rgb, size)


def images_file(split_dir: str | Path, name: str) -> Path:
    """Where a split's images lie: an .npy file that `load_split` memory-maps."""
    return Path(split_dir) / f"{name}_images.npy"


def write_split(
    dataset: str | Path, out: str | Path, config: DataConfig, input_size: int, progress: bool = True
) -> None:
    """The `split` stage: for train and test, out/<name>_images.npy (N,S,S,3) uint8 RGB at `input_size`,
    written row by row into a memory-mapped file (memory stays bounded whatever N is), and out/<name>.npz
    with xyz (N,21,3) metres, K (N,3,3), scale (N,), image ids, the part of the dataset they come from
    and the original image size (uv stays in its pixels). With `data.test_on: freihand_eval` the test
    images are FreiHAND's evaluation set and every training pose may train."""
    training = open_freihand(dataset, versions=config.versions_per_pose)
    versions = None if config.versions == "all" else config.versions
    n_train = None if config.n_train == "all" else config.n_train
    if config.test_on == "split":
        sources = dict.fromkeys(SPLITS, training)
        chosen = choose_images(
            training.num_poses, training.num_images, n_train, config.n_test, config.seed, config.split, versions
        )
    else:
        evaluation = open_freihand(dataset, EVALUATION, versions=1)  # FreiHAND's evaluation set: one image a pose
        sources = {"train": training, "test": evaluation}
        train = choose_images(training.num_poses, training.num_images, n_train, 0, config.seed, config.split, versions)
        test = choose_evaluation_images(evaluation.num_images, config.n_test, config.seed, config.split)
        chosen = {"train": train["train"], "test": test}
    for part in sorted({data.part for data in sources.values()}):
        read_visibility(dataset, part)  # its codes and rows checked now, not when `evaluate` reads them
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _check_disk(tmp, sum(len(ids) for ids in chosen.values()), input_size)
        for name, ids in chosen.items():
            data = sources[name]
            shape = (len(ids), input_size, input_size, 3)
            images = allocated_npy(images_file(tmp, name), np.uint8, shape)
            _decode_into(images, data, ids, f"decode {name} ({data.part})", progress)
            images.flush()
            del images
            poses = pose_id(ids, data.num_poses)
            np.savez(
                tmp / f"{name}.npz",
                xyz=data.xyz[poses],
                K=data.K[poses],
                scale=data.scale[poses],
                image_ids=ids,
                part=np.str_(data.part),
                image_size=np.int64(FRAME_SIZE),
            )


def write_eval_set(name: str, config: EvalSetConfig, out: str | Path, input_size: int, progress: bool = True) -> None:
    """The `eval_set` stage: every image of an extra test set, in the split's format (out/test.npz and
    out/test_images.npy) so that `evaluate` reads it like the test split. Left hands are mirrored to
    right ones, the image with its K and joints (`mirrored` marks them); `evaluate` mirrors the
    predictions back, so they and the metrics are in each photo's own frame."""
    where = f"eval_sets.{name}.path"
    if not Path(config.path).exists():
        raise FreiHANDError(f"{where}: {config.path} does not exist (a folder in FreiHAND's layout: handpose convert)")
    data = open_freihand(config.path)
    hands = read_hands(config.path)
    if config.hand is not None:
        hands = [config.hand] * data.num_images
    mirrored = np.array([hand == "left" for hand in hands or ["right"] * data.num_images])
    ids = np.arange(data.num_images)
    poses = pose_id(ids, data.num_poses)
    xyz, K = data.xyz[poses], data.K[poses]
    xyz[mirrored], K[mirrored] = mirror(xyz[mirrored], K[mirrored])
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _check_disk(tmp, len(ids), input_size)
        images = allocated_npy(images_file(tmp, "test"), np.uint8, (len(ids), input_size, input_size, 3))
        _decode_into(images, data, ids, f"decode {name}", progress)
        images[mirrored] = images[mirrored][:, :, ::-1]
        images.flush()
        del images
        np.savez(
            tmp / "test.npz",
            xyz=xyz,
            K=K,
            scale=data.scale[poses],
            image_ids=ids,
            part=np.str_(data.part),
            image_size=np.int64(FRAME_SIZE),
            mirrored=mirrored,
        )


SPLIT_KEYS = {"xyz", "K", "scale", "image_ids", "part", "image_size"}


def load_split(split_dir: str | Path, name: str) -> dict[str, np.ndarray]:
    """One split written by `write_split`: its labels in memory, its images memory-mapped (read-only),
    so only the pages a batch touches are read."""
    path, images = Path(split_dir) / f"{name}.npz", images_file(split_dir, name)
    for needed in (path, images):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed}: split not found (run the `split` stage)")
    try:
        with np.load(path) as f:
            split = {key: f[key] for key in f.files}
        split["images"] = np.load(images, mmap_mode="r")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path.parent / name}: not a readable split ({err}); rerun the `split` stage") from None
    missing = SPLIT_KEYS - set(split)
    if missing:
        raise ValueError(f"{path}: not a split written by `handpose split` (no {', '.join(sorted(missing))})")
    if split["images"].ndim != 4 or len(split["images"]) != len(split["xyz"]):
        raise ValueError(
            f"{images}: {split['images'].shape} images for {len(split['xyz'])} labels in {path}; "
            "rerun the `split` stage"
        )
    return split
