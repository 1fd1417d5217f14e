"""Atomic outputs: a stage that fails leaves no half-written file or folder behind, and no result that
is not a finite number.

Temporaries are hidden siblings, `.<name>.tmp<suffix>`: .dvcignore and .gitignore skip them, so one that
a SIGKILL leaves inside a folder DVC hashes never becomes part of its hash, and the next write of the
same output removes it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the disk, a quota or a file-size limit refused


def temporary(path: str | Path) -> Path:
    """Where `atomic_path` writes `path` until it is complete (the suffix kept: np.save and cv2 look at it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{path.suffix}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write (a file or a folder); it replaces `path` only
    if the block finishes, and is removed if it raises. An OSError about the temporary (a full disk,
    say) is raised naming `path`, the file the user asked for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            _remove(path)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno is None or (err.filename is not None and not str(err.filename).startswith(str(tmp))):
            raise  # a message of our own, or about an input read inside the block
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None
    finally:
        _remove(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_text(value: Any, path: str | Path) -> str:
    """`value` as strict JSON for the file `path` (indented, a final newline); a NaN or an infinity
    anywhere is refused, naming its key: bare NaN and Infinity are not JSON."""
    if bad := non_finite(value):
        raise ValueError(f"{path}: {bad[0]} is {bad[1]}, not a finite number; nothing was written")
    return json.dumps(value, indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, value: Any) -> None:
    write_text(path, json_text(value, path))


def non_finite(value: Any, key: str = "") -> tuple[str, float] | None:
    """The first (dotted key, value) in nested dicts and lists that is a NaN or an infinity, else None."""
    if isinstance(value, dict):
        items = ((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, float | np.floating) and not math.isfinite(value):
        return key or "the value", float(value)
    else:
        return None
    return next((bad for k, v in items if (bad := non_finite(v, k))), None)


def allocated_npy(path: str | Path, dtype: type, shape: tuple[int, ...]) -> np.memmap:
    """A new .npy file of `shape`, memory-mapped for writing, with every block allocated on disk first.
    A sparse file's pages are allocated when written, and a full disk then kills the process with
    SIGBUS; allocating up front raises OSError (ENOSPC) here, before any row is decoded."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    with open(path, "rb+") as f:
        os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    return array


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
