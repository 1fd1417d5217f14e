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
from handpose.skeleton import NUM_JOINTS, hand_scale

JPEG_QUALITY = 90


def encode_jpeg(img: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("could not encode a rendered image as JPEG")
    return buf


def _write_jpeg(path: Path, img: np.ndarray) -> None:
    path.write_bytes(encode_jpeg(img).tobytes())


_Labels = tuple[int, np.ndarray, np.ndarray, np.ndarray]  # first image of a chunk, its xyz, K, visibility
_T = TypeVar("_T")


def sample_rngs(seed: int, image: int, poses: int, part: str) -> tuple[np.random.Generator, np.random.Generator | None]:
    """The random streams of one image (render_sample's `rng` and `look`). Each depends only on (seed,
    image), so the output is independent of the worker count. Training image v * P + i shows pose i:
    version 0 is the plain stream (seed, i), version v re-draws the look from (seed, i, v). Evaluation
    poses have their own streams. (No stream ends in 0: numpy's seeds [s, i] and [s, i, 0] are one.)"""
    if part == layout.EVALUATION:
        return np.random.default_rng([seed, image, 0, 1]), None
    version, pose = divmod(image, poses)
    return np.random.default_rng([seed, pose]), (np.random.default_rng([seed, pose, version]) if version else None)


def _render_range(args: tuple[tuple[str, int, str], int, int, int]) -> _Labels:
    """Render and write images [start, stop) of a part; returns their labels for the json files."""
    (folder, poses, part), seed, start, stop = args
    xyz = np.zeros((stop - start, NUM_JOINTS, 3), np.float32)
    K = np.zeros((stop - start, 3, 3), np.float32)
    vis = np.zeros((stop - start, NUM_JOINTS), np.int8)
    for k, i in enumerate(range(start, stop)):
        sample = render_sample(*sample_rngs(seed, i, poses, part))
        _write_jpeg(layout.rgb_path(folder, i, part), cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR))
        if i < poses:  # as in FreiHAND, one mask per pose: its first version's
            _write_jpeg(layout.mask_path(folder, i, part), sample.mask)
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


def _write_part(
    root: Path, part: str, poses: int, versions: int, seed: int, workers: int | None, progress: bool
) -> None:
    """One part of the layout: `poses` x `versions` images, their masks and labels (one row per pose,
    visibility one row per image)."""
    layout.rgb_dir(root, part).mkdir(parents=True)
    layout.mask_dir(root, part).mkdir(parents=True)
    n = poses * versions
    xyz = np.zeros((n, NUM_JOINTS, 3), np.float32)
    K = np.zeros((n, 3, 3), np.float32)
    vis = np.zeros((n, NUM_JOINTS), np.int8)
    bar = tqdm(total=n, desc=f"rendering {part} hands", unit="img", disable=not progress, mininterval=1.0)
    with bar:
        for start, x, k, v in render_in_chunks(_render_range, (str(root), poses, part), seed, n, workers):
            xyz[start : start + len(x)], K[start : start + len(x)], vis[start : start + len(x)] = x, k, v
            bar.update(len(x))
    xyz, K = xyz[:poses], K[:poses]  # the versions of a pose share its hand and camera
    scale = hand_scale(xyz)
    for kind, value in (("xyz", xyz), ("K", K), ("scale", scale), ("visibility", vis)):
        (root / layout.labels_file(kind, part)).write_text(json.dumps(value.tolist()))


def write_dataset(
    root: str | Path,
    n: int,
    seed: int,
    workers: int | None = None,
    progress: bool = True,
    versions: int = 1,
    n_eval: int = 0,
) -> None:
    """Write `n` synthetic poses, each in `versions` renderings, in the FreiHAND v2 layout at `root`, and
    with `n_eval` > 0 an evaluation part of that many other poses (FreiHAND_pub_v2_eval.zip's files).

    Deterministic for a given (seed, n, versions, n_eval) whatever `workers` is. The dataset is built
    in a temporary sibling folder and only replaces `root` once complete, so `root` is never half-written.
    """
    if n < 1 or versions < 1 or n_eval < 0:
        raise ValueError(f"need n >= 1, versions >= 1 and n_eval >= 0, got {n}, {versions}, {n_eval}")
    with atomic_path(root) as tmp:  # replaces `root` only once the whole dataset is written
        _write_part(tmp, layout.TRAINING, n, versions, seed, workers, progress)
        if n_eval:
            _write_part(tmp, layout.EVALUATION, n_eval, 1, seed, workers, progress)
