"""The one reader of the FreiHAND v2 layout (the real dataset or the synthetic one); layout.py defines the files.

The dataset is a folder or the official zip, read in place (nothing is extracted, so no member can be
written anywhere), either with or without one top-level folder inside. Anything else is ignored.
Opening validates the labels and counts the images without decoding any; images are read on demand,
by `read_rgb`, the one place images are decoded.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from handpose.data import layout
from handpose.skeleton import NUM_JOINTS


class FreiHANDError(ValueError):
    """A FreiHAND folder is missing something or holds something malformed."""


JPEG_END = b"\xff\xd9"  # the end-of-image marker; entropy-coded data never holds it (0xFF is stuffed)
# Size limits, checked before a file is read (a zip member's size is its inflated size). FreiHAND v2's
# largest labels file that is read, training_xyz.json, is ~45 MB; its images are ~15 kB; a photo for
# `handpose predict` rarely passes 50 MB.
MAX_LABELS_BYTES = 256 << 20
MAX_IMAGE_BYTES = 256 << 20


def _size(path: Path | zipfile.Path) -> int:
    if isinstance(path, zipfile.Path):
        return path.root.getinfo(path.at).file_size
    return path.stat().st_size


def read_bounded(path: Path | zipfile.Path, limit: int, what: str) -> bytes:
    """The bytes of a file or zip member, refused naming it if it would inflate to more than `limit`."""
    try:
        size = _size(path)
    except (OSError, KeyError):  # KeyError: no such zip member
        raise FreiHANDError(f"{path}: missing or unreadable") from None
    if size > limit:
        raise FreiHANDError(f"{path}: {size:,} bytes, more than any {what} (at most {limit:,}); refused unread")
    try:
        return path.read_bytes()
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise FreiHANDError(f"{path}: unreadable ({err})") from None


def read_rgb(path: str | Path | zipfile.Path) -> np.ndarray:
    """Decode any image file (or zip member) to (H, W, 3) uint8 in RGB order; raises FreiHANDError
    naming `path`. A JPEG must end with its end-of-image marker: libjpeg only warns on a truncated
    file and fills the missing rows with grey."""
    path = Path(path) if isinstance(path, str) else path
    data = read_bounded(path, MAX_IMAGE_BYTES, "image")
    if path.suffix.lower() in (".jpg", ".jpeg") and not data.rstrip(b"\x00\r\n ").endswith(JPEG_END):
        raise FreiHANDError(f"{path}: truncated JPEG (no end-of-image marker)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FreiHANDError(f"{path}: missing or not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class FreiHAND:
    root: Path | zipfile.Path  # the folder holding <part>_xyz.json, on disk or inside the zip
    xyz: np.ndarray  # (P, 21, 3) float32, metres
    K: np.ndarray  # (P, 3, 3) float32
    scale: np.ndarray  # (P,) float32
    num_images: int  # number of .jpg files in layout.rgb_dir(root, part)
    part: str = layout.TRAINING  # or layout.EVALUATION

    @property
    def num_poses(self) -> int:
        return len(self.xyz)

    def pose_index(self, image_index: int) -> int:
        return layout.pose_id(self._check_index(image_index), self.num_poses)

    def rgb_path(self, image_index: int) -> Path | zipfile.Path:
        return layout.rgb_path(self.root, self._check_index(image_index), self.part)

    def mask_path(self, image_index: int) -> Path | zipfile.Path:
        # Real FreiHAND has one mask per pose: the extra images only change background and colours.
        return layout.mask_path(self.root, self.pose_index(image_index), self.part)

    def read_rgb(self, image_index: int) -> np.ndarray:
        """Image `image_index` as (H, W, 3) uint8 in RGB order."""
        return read_rgb(self.rgb_path(image_index))

    def _check_index(self, image_index: int) -> int:
        if not 0 <= image_index < self.num_images:
            raise IndexError(f"image index {image_index} out of range [0, {self.num_images}) in {self.root}")
        return int(image_index)


def _load_array(path: Path | zipfile.Path, trailing_shape: tuple[int, ...], shape_text: str) -> np.ndarray:
    """Read a json list of P arrays of `trailing_shape` as float32, or raise naming the file."""
    if not path.is_file():
        raise FreiHANDError(f"{path}: file missing")
    try:
        data = json.loads(read_bounded(path, MAX_LABELS_BYTES, "labels file"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FreiHANDError(f"{path}: not valid JSON ({e})") from e
    try:
        array = np.asarray(data, dtype=np.float32)
    except (ValueError, TypeError) as e:  # ragged lists or non-numbers
        raise FreiHANDError(f"{path}: expected a {shape_text} array of numbers ({e})") from e
    if array.ndim != 1 + len(trailing_shape) or array.shape[1:] != trailing_shape or len(array) == 0:
        raise FreiHANDError(f"{path}: expected a {shape_text} array with N >= 1, got shape {array.shape}")
    if not np.isfinite(array).all():
        bad = int(np.argmax(~np.isfinite(array).reshape(len(array), -1).all(1)))
        raise FreiHANDError(f"{path}: non-finite values (first at entry {bad})")
    return array


def _check_labels(root: Path | zipfile.Path, part: str, xyz: np.ndarray, K: np.ndarray, scale: np.ndarray) -> None:
    """Values the method cannot use: joints at or behind the camera, a camera that cannot be inverted
    (lifting needs K^-1), a hand scale that is not a length. Each names the file and the first pose."""
    checks = (
        ("xyz", (xyz[..., 2] <= 0).any(1), "a joint at depth z <= 0 (not in front of the camera)"),
        ("K", ~(np.abs(np.linalg.det(K.astype(np.float64))) > 1e-9), "a singular K (cannot lift to 3D)"),
        ("scale", scale <= 0, "a scale <= 0 (it is a bone length in metres)"),
    )
    for name, bad, what in checks:
        if bad.any():
            raise FreiHANDError(f"{root / layout.labels_file(name, part)}: entry {int(np.argmax(bad))} has {what}")


def _count_jpgs(folder: Path | zipfile.Path) -> int:
    # Counting entries is fast even for 130k images; nothing is decoded.
    if isinstance(folder, zipfile.Path):
        return sum(1 for entry in folder.iterdir() if entry.name.endswith(".jpg") and entry.is_file())
    with os.scandir(folder) as entries:
        return sum(1 for e in entries if e.name.endswith(".jpg") and e.is_file())


def _zip_members(path: Path) -> tuple[zipfile.ZipFile, list[str]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise FreiHANDError(f"{path}: not a zip archive of FreiHAND ({err})") from None
    return archive, archive.namelist()


def _zip_holds(path: Path, labels: str) -> bool:
    """Whether the zip archive at `path` holds the labels file `labels`."""
    archive, names = _zip_members(path)
    archive.close()
    return any(name.rsplit("/", 1)[-1] == labels for name in names)


def dataset_root(path: str | Path, part: str = layout.TRAINING) -> Path | zipfile.Path:
    """The folder holding <part>_xyz.json: `path` itself, its one subfolder that holds it, or the same
    inside a zip archive given directly or as one of the folder's .zip files (FreiHAND_pub_v2.zip has
    one top-level folder; the `data` stage's folder links the training and the evaluation archive)."""
    path, labels = Path(path), layout.labels_file("xyz", part)
    if path.is_file():
        archive, names = _zip_members(path)
        found = [name for name in names if name.rsplit("/", 1)[-1] == labels]
        if len(found) != 1:
            raise FreiHANDError(f"{path}: expected one {labels} in the archive, found {len(found)}")
        return zipfile.Path(archive, at=found[0][: -len(labels)])
    if not path.is_dir():
        raise FreiHANDError(f"{path}: dataset root missing, or neither a folder nor a zip archive")
    if not (path / labels).exists():
        inner = [d for d in path.iterdir() if d.is_dir() and (d / labels).is_file()]
        archives = [f for f in path.iterdir() if f.suffix == ".zip" and f.is_file() and _zip_holds(f, labels)]
        if len(inner) + len(archives) == 1:  # e.g. the `data` stage's folder holding the linked zips
            return inner[0] if inner else dataset_root(archives[0], part)
    return path


def open_freihand(root: str | Path, part: str = layout.TRAINING, versions: int | None = None) -> FreiHAND:
    """Validate and open the `part` (training or evaluation) of a FreiHAND v2 folder or zip; raises
    FreiHANDError naming the offending path. With `versions`, the images must be exactly that many per
    pose: labels for half the poses would otherwise read as twice the versions, each image of the
    second half labelled with another pose."""
    root = dataset_root(root, part)
    xyz_file, K_file, scale_file = (layout.labels_file(kind, part) for kind in ("xyz", "K", "scale"))
    xyz = _load_array(root / xyz_file, (NUM_JOINTS, 3), f"N x {NUM_JOINTS} x 3")
    K = _load_array(root / K_file, (3, 3), "N x 3 x 3")
    scale = _load_array(root / scale_file, (), "length-N")
    if not len(xyz) == len(K) == len(scale):
        raise FreiHANDError(
            f"{root}: pose counts differ: {xyz_file} has {len(xyz)}, {K_file} {len(K)}, {scale_file} {len(scale)}"
        )
    _check_labels(root, part, xyz, K, scale)
    rgb_dir = layout.rgb_dir(root, part)
    if not rgb_dir.is_dir():
        raise FreiHANDError(f"{rgb_dir}: image folder missing")
    num_images = _count_jpgs(rgb_dir)
    if num_images == 0:
        raise FreiHANDError(f"{rgb_dir}: no .jpg images")
    if versions is not None and num_images != versions * len(xyz):
        raise FreiHANDError(
            f"{rgb_dir}: {num_images:,} images, but the {len(xyz):,} poses of {xyz_file} at {versions} image(s) "
            f"each make {versions * len(xyz):,}"
        )
    if num_images % len(xyz):
        raise FreiHANDError(f"{rgb_dir}: {num_images} images is not a multiple of the {len(xyz)} poses in {xyz_file}")
    return FreiHAND(root=root, xyz=xyz, K=K, scale=scale, num_images=num_images, part=part)


def read_visibility(root: str | Path, part: str = layout.TRAINING) -> np.ndarray | None:
    """(N, 21) layout.VISIBLE/SELF_OCCLUDED/OBJECT_OCCLUDED codes, one row per image, where the dataset
    has them (the synthetic one does), else None."""
    folder = dataset_root(root, part)
    path = folder / layout.labels_file("visibility", part)
    if not path.is_file():
        return None
    try:  # as numbers first: int8 would wrap 300 to 44 and cut 1.5 to 1
        values = np.asarray(json.loads(read_bounded(path, MAX_LABELS_BYTES, "labels file")), dtype=np.float64)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError) as e:
        raise FreiHANDError(f"{path}: expected an N x {NUM_JOINTS} array of visibility codes ({e})") from e
    if values.ndim != 2 or values.shape[1] != NUM_JOINTS:
        raise FreiHANDError(f"{path}: expected an N x {NUM_JOINTS} array, got shape {values.shape}")
    unknown = ~np.isin(values, np.arange(len(layout.VISIBILITY_NAMES)))
    if unknown.any():
        row, joint = np.argwhere(unknown)[0]
        known = ", ".join(f"{code} {name}" for code, name in enumerate(layout.VISIBILITY_NAMES))
        raise FreiHANDError(f"{path}: entry {row}, joint {joint}: unknown code {values[row, joint]:g} (known: {known})")
    images = _count_jpgs(layout.rgb_dir(folder, part))
    if len(values) != images:
        raise FreiHANDError(f"{path}: {len(values):,} rows, but {layout.rgb_dir(folder, part)} has {images:,} images")
    return values.astype(np.int8)


def read_hands(root: str | Path, part: str = layout.TRAINING) -> list[str] | None:
    """Each image's hand ("right" or "left", layout.HANDS), where the dataset says (`handpose convert`
    writes it when its labels do), else None: FreiHAND's hands are all right hands."""
    folder = dataset_root(root, part)
    path = folder / layout.labels_file("hand", part)
    if not path.is_file():
        return None
    try:
        hands = json.loads(read_bounded(path, MAX_LABELS_BYTES, "labels file"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FreiHANDError(f"{path}: expected a list of {' or '.join(layout.HANDS)} ({e})") from None
    if not isinstance(hands, list):
        raise FreiHANDError(f"{path}: expected a list of {' or '.join(layout.HANDS)}, one per image")
    for i, hand in enumerate(hands):
        if hand not in layout.HANDS:
            raise FreiHANDError(f"{path}: entry {i}: unknown hand {hand!r} (known: {', '.join(layout.HANDS)})")
    images = _count_jpgs(layout.rgb_dir(folder, part))
    if len(hands) != images:
        raise FreiHANDError(f"{path}: {len(hands):,} entries, but {layout.rgb_dir(folder, part)} has {images:,} images")
    return hands
