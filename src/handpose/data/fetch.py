"""The `data` stage for the real dataset: FreiHAND v2 at `data.freihand_path`, downloaded from
`data.freihand_url` when it is not there, linked into the stage's output folder and validated.

The archive stays a zip (the reader reads it in place), and the link keeps a 3.7 GB file in one place
outside the repository; DVC hashes and caches what it points to.
"""

from __future__ import annotations

from pathlib import Path

from handpose.atomic import atomic_path
from handpose.config import DataConfig
from handpose.data.download import download
from handpose.data.freihand import open_freihand


def fetch_freihand(config: DataConfig, out: str | Path, progress: bool = True) -> None:
    source = Path(config.freihand_path)
    if not source.exists():
        download(config.freihand_url, source, progress=progress)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / source.name).symlink_to(source.resolve(), target_is_directory=source.is_dir())
        data = open_freihand(tmp)  # counts and labels checked now, not halfway through the split
    print(f"{source}: {data.num_poses:,} poses, {data.num_images:,} images")
