"""`data.source: freihand`: the real dataset, or any folder or zip in its layout (the interchange
format, layout.py; `handpose convert` writes one from your own images). FreiHAND v2 at
`data.freihand_path` (and its evaluation set at `data.freihand_eval_path` when the test uses it),
downloaded from `data.freihand_url` (and `data.freihand_eval_url`) when not there, linked into the
stage's output folder and validated.

A download takes its name only once it is whole and is FreiHAND: the size the server promised, every
zip member's CRC, the labels and the image count, and the SHA-256 where params give one. So a cut or
wrong download is never kept at `data.freihand_path`, where it would never be fetched again.

The archive stays a zip (the reader reads it in place), and the link keeps a 3.7 GB file in one place
outside the repository; DVC hashes and caches what it points to.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from handpose.atomic import atomic_path
from handpose.config import DataConfig
from handpose.data import layout
from handpose.data.download import download, sha256_of
from handpose.data.freihand import FreiHANDError, open_freihand


def _check_archive(path: Path, part: str, versions: int) -> None:
    """A FreiHAND zip, whole: every member's CRC, then the reader's checks of its labels and counts."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise FreiHANDError(f"{path}: not a zip archive ({err})") from None
    if broken is not None:
        raise FreiHANDError(f"{path}: member {broken} is corrupt (its CRC does not match)")
    open_freihand(path, part, versions)


def prepare(config: DataConfig, out: str | Path, progress: bool = True) -> None:
    """Link the training archive (and, with `data.test_on: freihand_eval`, the evaluation archive) into
    `out`, downloading each once when its path does not exist, and validate what will be read."""
    archives = [("data.freihand", config.freihand_path, config.freihand_url, config.freihand_sha256, layout.TRAINING)]
    if config.test_on == "freihand_eval":
        archives.append(
            ("data.freihand_eval", config.freihand_eval_path, config.freihand_eval_url, config.freihand_eval_sha256,
             layout.EVALUATION)
        )  # fmt: skip
    versions = {layout.TRAINING: config.freihand_versions, layout.EVALUATION: 1}  # the evaluation set: one a pose
    for key, path, url, sha256, part in archives:
        path = Path(path)
        if not path.exists():
            check = lambda file, part=part: _check_archive(file, part, versions[part])  # noqa: E731
            download(url, path, sha256=sha256, progress=progress, verify=check)
        elif sha256 is not None and path.is_file() and sha256_of(path) != sha256.lower():
            raise FreiHANDError(
                f"{key}_path: {path} does not match {key}_sha256 ({sha256}); remove it to download it again"
            )
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for _, path, _, _, part in archives:
            source = Path(path)
            link = tmp / source.name
            if link.exists() or link.is_symlink():
                raise ValueError(f"data.freihand_eval_path: {source} has the same name as data.freihand_path")
            data = open_freihand(source, part, versions[part])  # checked now, not halfway through the split
            link.symlink_to(source.resolve(), target_is_directory=source.is_dir())
            print(f"{source}: {part}: {data.num_poses:,} poses, {data.num_images:,} images")
