"""Official GroupLens releases by name: from a path, the cache, or a checked download.

`load_grouplens_release` finds a release in the cache or downloads it from GroupLens, checking
the MD5 sum GroupLens publishes beside each zip.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import tqdm

from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.grouplens import load_grouplens

# The official releases, by the name `data.load` knows them under.
GROUPLENS_RELEASES = ("ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest", "ml-latest-small")
DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"
CACHE_ENV = "SHORTREC_JAX_CACHE"
# The folder a release's zip unpacks to, where it is not the release name.
RELEASE_FOLDERS = {"ml-10m": "ml-10M100K"}


_MD5 = re.compile(r"\b([0-9a-fA-F]{32})\b")
_DOWNLOAD_BLOCK = 1 << 20
# Download sizes, for the message that says how to get a release.
_SIZES = {
    "ml-1m": "6 MB",
    "ml-10m": "63 MB",
    "ml-20m": "190 MB",
    "ml-25m": "250 MB",
    "ml-latest": "340 MB",
    "ml-latest-small": "1 MB",
}


def default_cache_dir() -> Path:
    """`$SHORTREC_JAX_CACHE`, else `~/.cache/shortrec_jax`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "shortrec_jax").expanduser()


def load_grouplens_release(
    release: str,
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str = DEFAULT_BASE_URL,
    md5: str | None = None,
    sha256: str | None = None,
    **options: Any,
) -> Dataset:
    """Loads an official GroupLens release by name, from `path`, the cache, or the web.

    Looks, in order, at `path`; at `<cache_dir>/<release>.zip` or the folder it unpacks to
    (`<cache_dir>/ml-1m/`, `<cache_dir>/ml-10M100K/`); then, with `download=True`, fetches
    `<base_url>/<release>.zip` into the cache. A download goes to a temporary file that is
    renamed only once its checksum matches: `md5` or `sha256` when given, else the MD5 sum
    GroupLens publishes at `<base_url>/<release>.zip.md5`. On a mismatch nothing is kept. A
    copy already in the cache is used as it is, without a new checksum.

    Args:
      release: one of GROUPLENS_RELEASES ("ml-1m", ..., "ml-latest-small").
      path: the release's folder or zip, already on disk.
      download: fetch the release when it is not cached (needs network access).
      cache_dir: where releases are kept; default `default_cache_dir()`.
      base_url: where the zips are published.
      md5, sha256: the expected checksum of the zip (hex), instead of the published MD5.
      **options: passed to `load_grouplens` (duplicates, rating_range).

    Returns:
      The data set, named after the release.
    """
    if release not in GROUPLENS_RELEASES:
        raise DataError(
            f"unknown GroupLens release {release!r}; expected one of {GROUPLENS_RELEASES}"
        )
    if path is not None:
        return load_grouplens(path, name=release, **options)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    zip_path = cache / f"{release}.zip"
    for candidate in (zip_path, cache / RELEASE_FOLDERS.get(release, release)):
        if candidate.exists():
            return load_grouplens(candidate, name=release, **options)
    if not download:
        raise DataError(
            f"{release} is not in the cache {cache}: pass download=True to fetch it from "
            f"{base_url} (about {_SIZES[release]}), or path= to a copy of {release}.zip or "
            "its folder"
        )
    fetch(f"{base_url.rstrip('/')}/{release}.zip", zip_path, md5=md5, sha256=sha256)
    return load_grouplens(zip_path, name=release, **options)


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Downloads `url` to `dest` through a temporary file, verifying its checksum.

    Args:
      url: what to fetch.
      dest: the final path; its folder is created.
      md5, sha256: expected hex digests; with neither, the MD5 sum is read from `url + ".md5"`.
      timeout: seconds to wait for the server on each read.

    Returns:
      `dest`, complete and verified.

    Raises:
      DataError: the server cannot be reached or answers with an error, or the checksum
        differs (the partial download is deleted either way).
    """
    dest = Path(dest)
    if md5 is None and sha256 is None:
        md5 = _published_md5(url + ".md5", timeout)
    expected = {"md5": md5, "sha256": sha256}
    digests = {k: hashlib.new(k, usedforsecurity=False) for k, v in expected.items() if v}
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _open_url(url, timeout) as response:
            _copy(response, out, digests.values(), desc=f"downloading {dest.name}", url=url)
        for kind, digest in digests.items():
            if digest.hexdigest() != str(expected[kind]).lower():
                raise DataError(
                    f"{url}: {kind} checksum mismatch, expected {expected[kind]}, got "
                    f"{digest.hexdigest()}; the download was deleted"
                )
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def _copy(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    digests: Iterable[Any],
    *,
    desc: str,
    url: str,
) -> None:
    """Copies an HTTP response to a file, feeding the digests and a progress bar."""
    length = response.headers.get("Content-Length")
    total = int(length) if length else None
    received = 0
    with tqdm.tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc) as bar:
        try:
            while block := response.read(_DOWNLOAD_BLOCK):
                out.write(block)
                for digest in digests:
                    digest.update(block)
                received += len(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as e:
            raise DataError(f"{url}: the download broke off ({e!r})") from None
    # http.client ends a read quietly when the server closes early; the length tells.
    if total is not None and received != total:
        raise DataError(f"{url}: the download broke off after {received} of {total} bytes")


def _open_url(url: str, timeout: float) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DataError(f"{url}: the server answered HTTP {e.code} ({e.reason})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(f"{url}: cannot download ({reason})") from None


def _published_md5(url: str, timeout: float) -> str:
    try:
        with _open_url(url, timeout) as response:
            text = response.read(4096).decode("ascii", "replace")
    except DataError as e:
        raise DataError(
            f"{e}; cannot verify the download without it (pass md5= or sha256= to give the "
            "checksum yourself)"
        ) from None
    match = _MD5.search(text)
    if match is None:
        raise DataError(f"{url}: expected an MD5 sum (32 hex digits), got {text[:80]!r}")
    return match.group(1).lower()
