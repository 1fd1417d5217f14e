"""The `heatmaps` stage: the training split's Gaussian targets, written once to data/heatmaps/train.npy
(float16, memory-mapped), so that no training step draws them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from handpose.atomic import allocated_npy, atomic_path
from handpose.camera import project
from handpose.heatmaps import gaussian_heatmaps
from handpose.skeleton import NUM_JOINTS

HEATMAPS_FILE = "train.npy"


WRITE_CHUNK = 4096  # samples drawn and written at a time: memory stays bounded whatever N is


def write_heatmaps(
    split: dict[str, np.ndarray], out_dir: str | Path, size: int, sigma: float, progress: bool = False
) -> None:
    """Training targets for a split: out_dir/train.npy, (N, 21, size, size) float16 from the K @ xyz
    projections, written chunk by chunk into a memory-mapped file."""
    uv = project(split["xyz"], split["K"])
    with atomic_path(Path(out_dir) / HEATMAPS_FILE) as tmp:
        shape = (len(uv), NUM_JOINTS, size, size)
        maps = allocated_npy(tmp, np.float16, shape)
        image_size = int(split["image_size"])
        for start in tqdm(range(0, len(uv), WRITE_CHUNK), desc="heatmaps", unit="chunk", disable=not progress):
            chunk = uv[start : start + WRITE_CHUNK]
            gaussian_heatmaps(chunk, image_size, size, sigma, out=maps[start : start + len(chunk)])
        maps.flush()
        del maps


def load_heatmaps(heatmaps_dir: str | Path, samples: int, size: int) -> np.ndarray:
    """The heatmaps `write_heatmaps` wrote (memory-mapped, read-only), checked against the split
    (`samples`) and the model (`size`)."""
    path = Path(heatmaps_dir) / HEATMAPS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: heatmaps not found (run the `heatmaps` stage)")
    try:
        maps = np.load(path, mmap_mode="r")  # a batch reads only its own rows
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not readable heatmaps ({err}); rerun the `heatmaps` stage") from None
    if maps.shape[0] != samples or maps.shape[1:] != (NUM_JOINTS, size, size):
        raise ValueError(
            f"{path}: shape {maps.shape}, but the split has {samples} training samples and the model "
            f"{NUM_JOINTS} x {size} x {size} heatmaps; rerun the `heatmaps` stage"
        )
    return maps
