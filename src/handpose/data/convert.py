"""`handpose convert`: a folder of your own images and a labels file -> the interchange layout
(FreiHAND v2's, layout.py), which `data.source: freihand` reads like the real dataset.

The labels file is JSON: a list with one entry per image,
    {"image": "hand_001.jpg", "xyz": 21 x [x, y, z] metres in camera space, "K": 3 x [3 numbers]}
in FreiHAND's joint order (skeleton.py), with an optional "scale" (metres; by default the length of
the bone skeleton.SCALE_BONE, as FreiHAND's) and an optional "hand" ("right", the default, or "left"),
kept in training_hand.json for the evaluation to mirror left hands. Each image is padded to a square
(nothing is cut off) and resized to the 224 px frame, and its K is changed to match; each becomes one
pose of one version.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from handpose.atomic import atomic_path
from handpose.camera import FRAME_SIZE, square_to_frame
from handpose.data import layout
from handpose.data.freihand import MAX_LABELS_BYTES, FreiHANDError, open_freihand, read_bounded, read_rgb
from handpose.skeleton import NUM_JOINTS, hand_scale

# Quality 95 with full-resolution colour (4:4:4): a photo and its mirror image then encode alike to within
# a grey level or two in 1% of the values, so a left hand scores as its right-hand mirror image would.
JPEG_OPTIONS = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]


def _entry(labels: Path, i: int, entry: object) -> tuple[str, np.ndarray, np.ndarray, float | None, str | None]:
    where = f"{labels}: entry {i}"
    if not isinstance(entry, dict) or not {"image", "xyz", "K"} <= set(entry):
        raise FreiHANDError(f"{where}: expected an object with image, xyz and K")
    try:
        xyz, K = np.asarray(entry["xyz"], np.float64), np.asarray(entry["K"], np.float64)
        scale = None if entry.get("scale") is None else float(entry["scale"])
    except (TypeError, ValueError):
        raise FreiHANDError(f"{where}: xyz, K and scale must be numbers") from None
    if xyz.shape != (NUM_JOINTS, 3) or K.shape != (3, 3):
        raise FreiHANDError(f"{where}: xyz must be {NUM_JOINTS} x 3 and K 3 x 3, got {xyz.shape} and {K.shape}")
    hand = entry.get("hand")
    if hand is not None and hand not in layout.HANDS:
        raise FreiHANDError(f"{where}: hand must be one of {', '.join(layout.HANDS)}, got {hand!r}")
    return str(entry["image"]), xyz, K, scale, hand


def convert(images_dir: str | Path, labels: str | Path, out: str | Path, progress: bool = True) -> int:
    """Write the layout at `out` (a folder, replaced only once complete); returns the number of images."""
    images_dir, labels = Path(images_dir), Path(labels)
    try:
        entries = json.loads(read_bounded(labels, MAX_LABELS_BYTES, "labels file"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FreiHANDError(f"{labels}: not a readable JSON labels file ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise FreiHANDError(f"{labels}: expected a non-empty list of entries, one per image")
    parsed = [_entry(labels, i, e) for i, e in enumerate(entries)]
    xyz_all, K_all, scales = [], [], []
    with atomic_path(out) as tmp:
        layout.rgb_dir(tmp).mkdir(parents=True)
        for i, (name, xyz, K, scale, _) in enumerate(tqdm(parsed, desc="convert", unit="img", disable=not progress)):
            rgb = read_rgb(images_dir / name)
            h, w = rgb.shape[:2]
            side = max(h, w)
            top, left = (side - h) // 2, (side - w) // 2
            square = cv2.copyMakeBorder(rgb, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT)
            frame = cv2.resize(square, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), JPEG_OPTIONS)
            if not ok:
                raise FreiHANDError(f"{images_dir / name}: could not be encoded as JPEG")
            layout.rgb_path(tmp, i).write_bytes(jpeg.tobytes())
            xyz_all.append(xyz)
            K_all.append(square_to_frame(K, -left, -top, side))
            scales.append(scale if scale is not None else float(hand_scale(xyz)))
        for kind, value in (("xyz", xyz_all), ("K", K_all), ("scale", scales)):
            (tmp / layout.labels_file(kind)).write_text(json.dumps(np.asarray(value).tolist()))
        if any(entry[4] for entry in parsed):  # a hand file only where the labels name one
            hands = [entry[4] or layout.HANDS[0] for entry in parsed]
            (tmp / layout.labels_file("hand")).write_text(json.dumps(hands))
        open_freihand(tmp)  # the reader's checks (depths, K, scale), before the folder takes its name
    return len(parsed)
