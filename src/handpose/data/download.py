"""Fetching a dataset archive over HTTP(S): resumable, verified, and never half-written under its name.

The bytes go to a hidden `.<name>.tmp` beside the target (git-ignored) and are renamed only once the
size (and the SHA-256, where given) check out. An interrupted transfer leaves that temporary, and the
next call asks the server for the rest (an HTTP Range request); a server that ignores Range sends the
whole file again, and the download restarts cleanly.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20


class DownloadError(ValueError):
    """A download failed: the message names the URL or the file and says what to do."""


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    target: str | Path,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `target`, resuming an earlier interrupted attempt; check `size` (bytes) and
    `sha256` where given. Returns `target`; raises DownloadError naming the URL or the file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(target)
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and have == size:  # already complete: only the rename was missing
            return _finish(partial, target, size, sha256)
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: cannot connect ({getattr(err, 'reason', err)})") from None
    with response:
        resumed = have and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            partial.unlink()  # resumed at another offset: appending would corrupt the file
            raise DownloadError(f"{url}: the server resumed at the wrong offset; run again to start over")
        if not resumed:
            have = 0  # a fresh start, or a server that ignores Range and sends everything again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        with (
            partial.open("ab" if resumed else "wb") as out,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar,
        ):
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
                error = "" if total is None or out.tell() == total else f"the server sent {out.tell():,} of {total:,}"
            except (OSError, urllib.error.URLError, http.client.HTTPException) as err:  # dropped or timed out
                error = str(err) or type(err).__name__
            if error:
                raise DownloadError(f"{url}: interrupted after {out.tell():,} bytes ({error}); run again to resume")
    return _finish(partial, target, size, sha256, url)


def _finish(partial: Path, target: Path, size: int | None, sha256: str | None, url: str = "") -> Path:
    got = partial.stat().st_size
    if size is not None and got != size:
        where = url or partial
        if got < size:
            raise DownloadError(f"{where}: got {got:,} of {size:,} bytes; run again to resume")
        partial.unlink()
        raise DownloadError(f"{where}: got {got:,} bytes, expected {size:,}; the file was removed")
    if sha256 is not None and _sha256(partial) != sha256.lower():
        partial.unlink()
        raise DownloadError(f"{url or target}: SHA-256 mismatch, expected {sha256}; the file was removed")
    os.replace(partial, target)
    return target
