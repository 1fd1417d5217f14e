"""A grid of dataset samples with their 2D skeletons drawn over them, to look at what the data is."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from handpose.atomic import atomic_path
from handpose.camera import project
from handpose.data.freihand import open_freihand, read_visibility
from handpose.drawing import draw_skeleton


def write_contact_sheet(dataset: str | Path, out: str | Path, n: int = 16, cols: int = 4, seed: int = 0) -> None:
    """Draw `n` random images of a FreiHAND-layout folder with their skeletons into one PNG."""
    if n < 1 or cols < 1:
        raise ValueError(f"contact sheet: --n and --cols must be >= 1, got {n} and {cols}")
    if Path(out).suffix.lower() not in (".png", ".jpg"):
        raise ValueError(f"{out}: the contact sheet is written as .png or .jpg")
    data = open_freihand(dataset)
    visibility = read_visibility(dataset)
    ids = np.sort(np.random.default_rng(seed).choice(data.num_images, min(n, data.num_images), replace=False))
    tiles = []
    for i in ids:
        pose = data.pose_index(int(i))
        uv = project(data.xyz[pose], data.K[pose])
        tiles.append(draw_skeleton(data.read_rgb(int(i)), uv, None if visibility is None else visibility[pose]))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    rows = [np.hstack(tiles[r : r + cols]) for r in range(0, len(tiles), cols)]
    with atomic_path(out) as tmp:  # the temporary name keeps the suffix, which picks cv2's encoder
        if not cv2.imwrite(str(tmp), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR)):
            raise ValueError(f"{out}: could not write the image")
