"""Writing synthetic samples in the FreiHAND v2 layout (layout.py), in parallel processes.

The output folder reads with `handpose.data.freihand.open_freihand` exactly like the real dataset.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
from tqdm import tqdm

from handpose.atomic import atomic_path
from handpose.data import layout
from handpose.data.synthetic.render import render_sample
from handpose.skeleton import NUM_JOINTS, SCALE_BONE

JPEG_QUALITY = 90


def encode_jpeg(img: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("could not encode a rendered image as JPEG")
    return buf


def _write_jpeg(path: Path, img: np.ndarray) -> None:
    path.write_bytes(encode_jpeg(img).tobytes())


_Labels = tuple[int, np.ndarray, np.ndarray, np.ndarray]  # first index, xyz, K, visibility of a chunk
_T = TypeVar("_T")


def _render_range(args: tuple[str, int, int, int]) -> _Labels:
    """Render and write samples [start, stop); returns their labels for the json files."""
    folder, seed, start, stop = args
    xyz = np.zeros((stop - start, NUM_JOINTS, 3), np.float32)
    K = np.zeros((stop - start, 3, 3), np.float32)
    vis = np.zeros((stop - start, NUM_JOINTS), np.int8)
    for k, i in enumerate(range(start, stop)):
        # Each sample's RNG depends only on (seed, index): output is independent of worker count.
        sample = render_sample(np.random.default_rng([seed, i]))
        _write_jpeg(layout.rgb_path(folder, i), cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR))
        _write_jpeg(layout.mask_path(folder, i), sample.mask)  # one image per pose: image i shows pose i
        xyz[k], K[k], vis[k] = sample.xyz, sample.K, sample.visibility
    return start, xyz, K, vis


def _imap_in_processes(func: Callable[[tuple], _T], tasks: list[tuple], workers: int) -> Iterator[_T]:
    """Run `func` over `tasks` in a forked process pool, yielding results as they finish.

    Fork (not spawn/forkserver) so it works whatever the caller's __main__ is. A child forked while
    OpenCV's thread pool is alive deadlocks on its first OpenCV thread call, so the parent shrinks
    that pool to one thread (which the children inherit) for the pool's lifetime.
    """
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with ctx.Pool(workers) as pool:
            yield from pool.imap_unordered(func, tasks)
    finally:
        cv2.setNumThreads(cv_threads)


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def render_in_chunks(func: Callable[[tuple], _T], first: Any, seed: int, n: int, workers: int | None) -> Iterator[_T]:
    """`func((first, seed, start, stop))` over chunks of samples [0, n), in `workers` processes (default:
    all cores), yielding results as they finish."""
    workers = _default_workers() if workers is None else max(1, workers)
    chunk = max(1, min(64, math.ceil(n / (workers * 8))))
    tasks = [(first, seed, s, min(s + chunk, n)) for s in range(0, n, chunk)]
    return map(func, tasks) if workers == 1 else _imap_in_processes(func, tasks, workers)


def write_dataset(root: str | Path, n: int, seed: int, workers: int | None = None, progress: bool = True) -> None:
    """Write `n` synthetic samples (one image per pose) in the FreiHAND v2 layout at `root`.

    Deterministic for a given (seed, n) whatever `workers` is. The dataset is built in a temporary
    sibling folder and only replaces `root` once complete, so `root` is never half-written.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    with atomic_path(root) as tmp:  # replaces `root` only once the whole dataset is written
        layout.rgb_dir(tmp).mkdir(parents=True)
        layout.mask_dir(tmp).mkdir(parents=True)
        xyz = np.zeros((n, NUM_JOINTS, 3), np.float32)
        K = np.zeros((n, 3, 3), np.float32)
        vis = np.zeros((n, NUM_JOINTS), np.int8)
        with tqdm(total=n, desc="rendering hands", unit="img", disable=not progress, mininterval=1.0) as bar:
            for start, x, k, v in render_in_chunks(_render_range, str(tmp), seed, n, workers):
                xyz[start : start + len(x)], K[start : start + len(x)], vis[start : start + len(x)] = x, k, v
                bar.update(len(x))

        scale = np.linalg.norm(xyz[:, SCALE_BONE[0]] - xyz[:, SCALE_BONE[1]], axis=-1)
        for name, value in (
            (layout.XYZ_FILE, xyz),
            (layout.K_FILE, K),
            (layout.SCALE_FILE, scale),
            (layout.VISIBILITY_FILE, vis),
        ):
            (tmp / name).write_text(json.dumps(value.tolist()))
