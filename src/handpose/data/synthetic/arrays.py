"""Synthetic samples rendered straight into arrays at the model's input size, for pretraining: no
files, but the same pixels the dataset's JPEGs would give after the split stage's decoding."""

from __future__ import annotations

import cv2
import numpy as np
from tqdm import tqdm

from handpose.data.images import to_input_size
from handpose.data.synthetic.render import render_sample
from handpose.data.synthetic.write import encode_jpeg, render_in_chunks
from handpose.skeleton import NUM_JOINTS


def _render_range(args: tuple[int, int, int, int]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Render samples [start, stop) into (images at `size`, xyz, K), through the same JPEG encoding
    and resizing as the files and the split stage, so the pixels are distributed alike."""
    size, seed, start, stop = args
    images = np.zeros((stop - start, size, size, 3), np.uint8)
    xyz = np.zeros((stop - start, NUM_JOINTS, 3), np.float32)
    K = np.zeros((stop - start, 3, 3), np.float32)
    for k, i in enumerate(range(start, stop)):
        sample = render_sample(np.random.default_rng([seed, i]))
        bgr = cv2.imdecode(encode_jpeg(cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR)), cv2.IMREAD_COLOR)
        images[k] = to_input_size(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
        xyz[k], K[k] = sample.xyz, sample.K
    return start, images, xyz, K


def render_arrays(
    n: int, seed: int, size: int, workers: int | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """`n` synthetic samples in memory: images (n, size, size, 3) uint8 RGB, as the split stage would
    decode them, xyz (n, 21, 3) and K (n, 3, 3); sample i is the one `write_dataset(.., seed)` writes as i."""
    out = {
        "images": np.zeros((n, size, size, 3), np.uint8),
        "xyz": np.zeros((n, NUM_JOINTS, 3), np.float32),
        "K": np.zeros((n, 3, 3), np.float32),
    }
    with tqdm(total=n, desc="rendering hands", unit="img", disable=not progress, mininterval=1.0) as bar:
        for start, *arrays in render_in_chunks(_render_range, size, seed, n, workers):
            for key, value in zip(("images", "xyz", "K"), arrays):
                out[key][start : start + len(value)] = value
            bar.update(len(arrays[0]))
    return out
