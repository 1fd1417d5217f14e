"""Fetching a dataset archive over HTTP(S): resumable, verified, and never half-written under its name.

The bytes go to a hidden `.<name>.tmp` beside the target (git- and DVC-ignored) and take the target's
name only once they are whole: the size the server promised, and the caller's size, SHA-256 and
`verify` where given. A download whose size nobody states (no Content-Length, no `size`, no `sha256`)
cannot be told from a cut one, so it is refused.

An interrupted transfer keeps its temporary and, beside it, the server's validator of that version of
the file (its ETag or Last-Modified). The next call asks for the rest with `Range` and `If-Range`: a
server whose file has changed since sends the new file whole, and the download starts over, so two
versions are never spliced. A temporary without a validator is never resumed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20


class DownloadError(ValueError):
    """A download failed: the message names the URL or the file and says what to do."""


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp")


def _validator_file(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-validator")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _validator(headers: http.client.HTTPMessage) -> str | None:
    """What identifies this version of the file for If-Range: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")


def _promised(response: http.client.HTTPResponse, have: int) -> int | None:
    """The whole file's size as the server states it (Content-Range's total, or the offset plus
    Content-Length), or None."""
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = response.headers.get("Content-Length")
    return have + int(length) if length is not None and length.isdigit() else None


def _start_over(target: Path) -> None:
    _partial(target).unlink(missing_ok=True)
    _validator_file(target).unlink(missing_ok=True)


def download(
    url: str,
    target: str | Path,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Download `url` to `target`, resuming an earlier interrupted attempt of the same version; check
    `size` (bytes), `sha256`, and `verify(file)` (raises ValueError) before the file takes its name.
    Returns `target`; raises DownloadError naming the URL or the file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial, validator_file = _partial(target), _validator_file(target)
    if partial.exists() and not validator_file.exists():
        _start_over(target)  # no way to tell whether the server's file is still the one it came from
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-", "If-Range": validator_file.read_text()} if have else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and have == size:  # already complete: only the checks and rename were missing
            return _finish(url, partial, target, size, sha256, verify)
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: cannot connect ({getattr(err, 'reason', err)})") from None
    with response:
        resumed = bool(have) and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            _start_over(target)  # resumed at another offset: appending would corrupt the file
            raise DownloadError(f"{url}: the server resumed at the wrong offset; run again to start over")
        if not resumed:
            _start_over(target)  # a fresh start, a changed file, or a server that ignores Range
            have = 0
        kind = response.headers.get("Content-Type", "")
        if kind.startswith(("text/html", "application/xhtml")):
            raise DownloadError(f"{url}: the server sent a web page ({kind}), not the file; check the address")
        total = _promised(response, have)
        if total is None and size is None and sha256 is None:
            raise DownloadError(
                f"{url}: the server does not say the file's size, so a cut transfer would look complete; "
                "give its size or SHA-256"
            )
        if total is not None and size is not None and total != size:
            raise DownloadError(f"{url}: the server offers {total:,} bytes, expected {size:,}; nothing was kept")
        if validator := _validator(response.headers):
            validator_file.write_text(validator)
        with (
            partial.open("ab" if resumed else "wb") as out,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar,
        ):
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
                error = "" if total is None or out.tell() == total else f"the server sent {out.tell():,} of {total:,}"
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as err:
                error = str(err) or type(err).__name__  # dropped or timed out
            if error:
                if not validator:
                    _start_over(target)
                again = "run again to resume" if validator else "the server names no version to resume; run again"
                raise DownloadError(f"{url}: interrupted after {out.tell():,} bytes ({error}); {again}")
    return _finish(url, partial, target, size, sha256, verify)


def _finish(
    url: str, partial: Path, target: Path, size: int | None, sha256: str | None, verify: Callable[[Path], None] | None
) -> Path:
    got = partial.stat().st_size
    if size is not None and got != size:
        if got < size:
            raise DownloadError(f"{url}: got {got:,} of {size:,} bytes; run again to resume")
        _start_over(target)
        raise DownloadError(f"{url}: got {got:,} bytes, expected {size:,}; the file was removed")
    if sha256 is not None and sha256_of(partial) != sha256.lower():
        _start_over(target)
        raise DownloadError(f"{url}: SHA-256 mismatch, expected {sha256}; the file was removed")
    if verify is not None:
        try:
            verify(partial)
        except ValueError as err:
            _start_over(target)
            reason = str(err).replace(str(partial), str(target))  # name the file asked for, not the temporary
            raise DownloadError(f"{url}: {reason}; the download was removed") from None
    os.replace(partial, target)
    _validator_file(target).unlink(missing_ok=True)
    return target
