"""Fetching the official GTSRB archives from the INI server, resumable and md5-checked.

Each archive streams into ``NAME.part``; an interrupted transfer is resumed with an HTTP ``Range`` request on the
next call, and only a file whose md5 matches is renamed to ``NAME`` (atomically), so a folder never holds a
truncated archive under its real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPException
from pathlib import Path
from typing import Any

from klugerhans.errors import DataError

BASE_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370"
"""Where the INI publishes the GTSRB release archives."""
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One downloadable file and its checksum."""

    name: str
    """File name, both on the server (under the base URL) and on disk."""
    md5: str
    """Expected md5 hex digest of the whole file."""


ARCHIVES: tuple[Archive, ...] = (
    Archive("GTSRB_Final_Training_Images.zip", "f33fd80ac59bff73c82d25ab499e03a3"),
    Archive("GTSRB_Final_Test_Images.zip", "c7e4e6327067d32654124b0fe9e82185"),
    Archive("GTSRB_Final_Test_GT.zip", "fe31e9c9270bbcd7b84b7f21a9d9d9e5"),
)
"""The three official archives: training images, test images, test ground truth."""


def download_gtsrb(
    dest_dir: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    archives: Sequence[Archive] | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download the official GTSRB archives into ``dest_dir`` (skipping those already there).

    Args:
        dest_dir: folder for the archives; created if missing.
        base_url: server folder; default :data:`BASE_URL`.
        archives: what to fetch; default :data:`ARCHIVES`.
        timeout: seconds to wait on the network before giving up (the next call resumes).
        progress: show a progress bar on stderr.

    Returns:
        ``dest_dir`` as a Path, ready for ``load_dataset("gtsrb", data_dir=...)``.

    Raises:
        DataError: network failure (run again to resume) or a checksum mismatch.
    """
    dest = Path(dest_dir).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create download folder {dest} ({err.strerror or err}); pass another one") from None
    url_base = (BASE_URL if base_url is None else base_url).rstrip("/")
    for archive in ARCHIVES if archives is None else archives:
        if not (dest / archive.name).is_file():
            fetch(f"{url_base}/{archive.name}", dest / archive.name, archive.md5, timeout=timeout, progress=progress)
    return dest


def fetch(url: str, target: Path, md5: str, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Stream ``url`` to ``target`` via ``target.part``, resuming a previous partial transfer, and check its md5.

    Raises:
        DataError: the server or network failed (the ``.part`` file is kept for resuming) or the md5 differs
            (the ``.part`` file is removed, so the next call starts afresh).
    """
    part = target.with_name(target.name + ".part")
    total: int | None = None
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            # 206: the server honours the range; 200: it sends the whole file, so start over.
            if response.status != 206:
                have = 0
            total = _total_size(response.headers, have)
            with open(part, "ab" if have else "wb") as fh, _progress_bar(target.name, total, have, progress) as bar:
                while chunk := response.read(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
                fh.flush()
                os.fsync(fh.fileno())
    except urllib.error.HTTPError as err:
        # 416: the range starts at the end, i.e. the .part file is already complete; the md5 check decides.
        if err.code != 416 or not part.is_file():
            raise DataError(f"download of {url} failed: HTTP {err.code} {err.reason}; try again later") from None
    except (urllib.error.URLError, HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise DataError(f"download of {url} interrupted ({reason}); run again to resume") from None
    if total is not None and part.stat().st_size < total:
        # http.client ends a body cut short by the server without an error; the size tells.
        raise DataError(
            f"download of {url} interrupted after {part.stat().st_size:,} of {total:,} bytes; run again to resume"
        )
    got = _md5(part)
    if got != md5:
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} is corrupt (md5 {got}, expected {md5}); run again to restart it")
    os.replace(part, target)
    return target


def _total_size(headers: Message, have: int) -> int | None:
    """Full file size from Content-Range (``bytes a-b/total``) or Content-Length plus what is already there."""
    content_range = headers.get("Content-Range")
    if content_range and "/" in content_range:
        with contextlib.suppress(ValueError):
            return int(content_range.rsplit("/", 1)[1])
    length = headers.get("Content-Length")
    if length is not None:
        with contextlib.suppress(ValueError):
            return have + int(length)
    return None


def _progress_bar(name: str, total: int | None, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=f"downloading {name}",
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not enabled,
        leave=False,
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
