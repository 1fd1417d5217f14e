"""`data.source: freihand`: the real dataset, or any folder or zip in its layout (the interchange
format, layout.py; `handpose convert` writes one from your own images). FreiHAND v2 at
`data.freihand_path` (and its evaluation set at `data.freihand_eval_path` when the test uses it),
downloaded from `data.freihand_url` (and `data.freihand_eval_url`) when not there, linked into the
stage's output folder and validated.

The archive stays a zip (the reader reads it in place), and the link keeps a 3.7 GB file in one place
outside the repository; DVC hashes and caches what it points to.
"""

from __future__ import annotations

from pathlib import Path

from handpose.atomic import atomic_path
from handpose.config import DataConfig
from handpose.data import layout
from handpose.data.download import download
from handpose.data.freihand import open_freihand


def prepare(config: DataConfig, out: str | Path, progress: bool = True) -> None:
    """Link the training archive (and, with `data.test_on: freihand_eval`, the evaluation archive) into
    `out`, downloading each once when its path does not exist, and validate what will be read."""
    archives = [(config.freihand_path, config.freihand_url, layout.TRAINING)]
    if config.test_on == "freihand_eval":
        archives.append((config.freihand_eval_path, config.freihand_eval_url, layout.EVALUATION))
    for path, url, _ in archives:
        if not Path(path).exists():
            download(url, path, progress=progress)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for path, _, part in archives:
            source = Path(path)
            link = tmp / source.name
            if link.exists() or link.is_symlink():
                raise ValueError(f"data.freihand_eval_path: {source} has the same name as data.freihand_path")
            link.symlink_to(source.resolve(), target_is_directory=source.is_dir())
            data = open_freihand(tmp, part)  # counts and labels checked now, not halfway through the split
            print(f"{source}: {part}: {data.num_poses:,} poses, {data.num_images:,} images")
