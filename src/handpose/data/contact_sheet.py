"""A grid of dataset samples with their 2D skeletons drawn over them, to look at what the data is."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from handpose.atomic import atomic_path
from handpose.camera import project
from handpose.data.freihand import open_freihand, read_visibility
from handpose.drawing import draw_skeleton


def write_contact_sheet(
    dataset: str | Path, out: str | Path, n: int = 16, cols: int = 4, seed: int = 0, beside: str | Path | None = None
) -> None:
    """Draw `n` random images of a FreiHAND-layout folder with their skeletons into one PNG or JPEG;
    with `beside`, the same grid of that folder to its left (e.g. an older renderer's), a gap between."""
    if n < 1 or cols < 1:
        raise ValueError(f"contact sheet: --n and --cols must be >= 1, got {n} and {cols}")
    if Path(out).suffix.lower() not in (".png", ".jpg"):
        raise ValueError(f"{out}: the contact sheet is written as .png or .jpg")
    grids = [_grid(folder, n, cols, seed) for folder in ([beside] if beside else []) + [dataset]]
    gap = np.full((grids[0].shape[0], 16, 3), 255, np.uint8)
    sheet = np.hstack([grids[0], gap, grids[1]]) if beside else grids[0]
    with atomic_path(out) as tmp:  # the temporary name keeps the suffix, which picks cv2's encoder
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise ValueError(f"{out}: could not write the image")


def _grid(dataset: str | Path, n: int, cols: int, seed: int) -> np.ndarray:
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
    return np.vstack(rows)
