"""Mindboggle-101 from OSF: list the archives, download them safely, extract chosen subjects.

osfclient 0.0.5 is used for listing only (project, storage, one folder: names, sizes, hashes,
download links). Downloads are our own ``requests`` streams, because osfclient's ``write_to``
has no timeout, retry, resume or checksum (docs/references.md: OSF API and osfclient).
Nothing is ever left under a final name unless it is whole: archives go through ``<name>.part``
and a hash check, subject folders through a temporary folder, the manifest through
:func:`meshseg.image.io.write_table`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pandas as pd
import requests
from osfclient import OSF
from osfclient.exceptions import OSFException
from osfclient.models.session import OSFSession
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from meshseg.image.io import file_digest, write_table

log = logging.getLogger(__name__)

OSF_API_URL = "https://api.osf.io/v2"
ARCHIVE_RE = re.compile(r"(?P<cohort>.+)_volumes\.tar\.gz")
CHUNK_BYTES = 1 << 16
MANIFEST_COLUMNS = ["file", "size", "hash_type", "hash", "url", "downloaded_utc"]


class DownloadError(ValueError):
    """A listing or file that could not be fetched or verified; the message names it."""


class _TransientError(Exception):
    """A failed attempt worth retrying (5xx, 429, truncated body)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of the OSF folder, as the API lists it (hashes may be ``None``)."""

    name: str
    size: int | None
    md5: str | None
    sha256: str | None
    url: str  # ``links.upload``: the WaterButler download URL


@dataclass(frozen=True)
class OSFFolder:
    """A top-level osfstorage folder of an OSF project, and the API that serves it."""

    api_url: str = OSF_API_URL
    project: str = "9ahyp"
    folder: str = "Mindboggle101_volumes"


class _Session(OSFSession):
    """osfclient's session with a timeout and retries on every GET, without its limiter.

    ``OSFSession.get`` is wrapped by a 1 request/s limiter; its ``__wrapped__`` is the plain GET
    (with the 401 handling). Listing is about seven requests, so the limiter only costs time.
    """

    def __init__(self, api_url: str, timeout: float, retries: int, backoff: float) -> None:
        super().__init__()
        self.base_url = api_url.rstrip("/")
        self.timeout = timeout
        retry = Retry(
            total=retries,
            backoff_factor=backoff,
            raise_on_status=False,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods={"GET"},
        )
        for prefix in ("http://", "https://"):
            self.mount(prefix, HTTPAdapter(max_retries=retry))

    def get(self, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return OSFSession.get.__wrapped__(self, url, *args, **kwargs)


def list_archives(
    api_url: str = OSF_API_URL,
    project: str = "9ahyp",
    folder: str = "Mindboggle101_volumes",
    timeout: float = 60,
    *,
    retries: int = 5,
    backoff: float = 1.0,
) -> list[RemoteFile]:
    """List the files (sorted by name) of one top-level osfstorage folder of an OSF project.

    Parameters
    ----------
    api_url
        OSF v2 API base URL, a config value (tests point it at a local server).
    timeout, retries, backoff
        Seconds per request; retries on connection errors, 429 and 5xx, with exponential backoff.
    """
    osf = OSF()
    osf.session = _Session(api_url, timeout, retries, backoff)
    try:
        store = osf.project(project).storage("osfstorage")
        folders = {f.name: f for f in store.folders}
        if folder not in folders:
            raise DownloadError(
                f"{api_url}: OSF project {project} has no folder {folder!r}; "
                f"folders: {', '.join(sorted(folders)) or 'none'}"
            )
        files = list(folders[folder].files)
    except (requests.RequestException, RuntimeError, OSFException, KeyError) as err:
        raise DownloadError(
            f"{api_url}: cannot list {project}/{folder} ({type(err).__name__}: {err})"
        ) from None
    # osfclient keeps links.upload (the WaterButler download URL) only as a private attribute
    return sorted(
        (
            RemoteFile(f.name, f.size, f.hashes.get("md5"), f.hashes.get("sha256"), f._upload_url)
            for f in files
        ),
        key=lambda f: f.name,
    )


def _mismatch(path: Path, remote: RemoteFile) -> str | None:
    """What is wrong with ``path`` as a copy of ``remote`` (size, then sha256 or md5), or None."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"size {size} bytes, expected {remote.size}"
    algorithm, expected = ("sha256", remote.sha256) if remote.sha256 else ("md5", remote.md5)
    if not expected:
        log.warning("%s: OSF lists no hash; only the size was checked", remote.name)
        return None
    actual = file_digest(path, algorithm)
    return None if actual == expected else f"{algorithm} {actual}, expected {expected}"


def _fetch_once(remote: RemoteFile, part: Path, timeout: float) -> None:
    """One GET into ``part``, resuming it with a Range request when it is not empty."""
    offset = part.stat().st_size if part.exists() else 0
    if remote.size is not None and offset > remote.size:
        part.unlink()  # longer than the file, so not a prefix of it
        offset = 0
    if offset and offset == remote.size:
        return  # complete; the caller verifies it
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
    with requests.get(remote.url, headers=headers, stream=True, timeout=timeout) as response:
        status = response.status_code
        resumed = response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        if status == 416 or (status == 206 and not resumed):
            part.unlink(missing_ok=True)
            raise _TransientError(f"HTTP {status} does not resume byte {offset}; starting over")
        if status == 429 or status >= 500:
            raise _TransientError(f"HTTP {status}")
        if status not in (200, 206):
            raise DownloadError(f"{remote.name}: HTTP {status} from {remote.url} (not retried)")
        if status == 200:
            offset = 0  # the server ignored Range: start over
        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(
                total=remote.size,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=remote.name,
                file=sys.stderr,
            ) as bar,
        ):
            for chunk in response.iter_content(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    if remote.size is not None and part.stat().st_size < remote.size:
        raise _TransientError(f"body ended after {part.stat().st_size} of {remote.size} bytes")


def download(
    remote: RemoteFile,
    dest: str | os.PathLike,
    timeout: float = 60,
    retries: int = 5,
    backoff: float = 1.0,
) -> Path:
    """Download ``remote`` to ``dest`` through ``<dest>.part``, verified, resumable, idempotent.

    A ``dest`` that already has the listed size and hash is kept without any request. Connection
    errors, timeouts, truncated bodies, 429 and 5xx are retried ``retries`` times, waiting
    ``backoff * 2**k`` seconds; a left-over ``.part`` is resumed with ``Range`` when the server
    answers 206. Other 4xx fail at once.

    Raises
    ------
    DownloadError
        Every attempt failed (names the URL and the last error), a 4xx, or a size/hash mismatch
        (names the file, expected and actual; the ``.part`` is deleted), or ``dest`` could
        not be written (disk full, folder not writable; the ``.part`` is deleted).
    """
    dest = Path(dest)
    if dest.is_file():
        problem = _mismatch(dest, remote)
        if problem is None:
            log.info("%s: already whole, not downloaded", dest)
            return dest
        log.warning("%s: existing file has %s; downloading again", dest, problem)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(
            f"{dest}: cannot create the folder {dest.parent} ({err.strerror or err})"
        ) from None
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(remote, part, timeout)
            break
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            _TransientError,
        ) as err:
            if attempt == retries:
                raise DownloadError(
                    f"{remote.url}: download of {remote.name} gave up after "
                    f"{retries} retries; last error: {err}"
                ) from None
            wait = backoff * 2**attempt
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.2g s",
                remote.name,
                attempt + 1,
                err,
                wait,
            )
            time.sleep(wait)
        except requests.RequestException as err:  # not worth retrying (invalid URL, ...)
            raise DownloadError(
                f"{remote.url}: download of {remote.name} failed ({type(err).__name__}: {err})"
            ) from None
        except OSError as err:  # writing here failed: disk full, folder not writable
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{dest}: not written ({err.strerror or err}); the partial "
                f"download {part.name} was deleted"
            ) from None
    problem = _mismatch(part, remote)
    if problem is not None:
        part.unlink()
        raise DownloadError(f"{remote.name}: downloaded file has {problem} (from {remote.url})")
    os.replace(part, dest)
    log.info("%s: downloaded and verified", dest)
    return dest


def cohort_of(archive_name: str) -> str:
    """The cohort an archive holds: ``"MMRR-21_volumes.tar.gz" -> "MMRR-21"``."""
    match = ARCHIVE_RE.fullmatch(archive_name)
    if match is None:
        raise ValueError(f"{archive_name}: not a Mindboggle archive name (<Cohort>_volumes.tar.gz)")
    return match["cohort"]


def _layout_parts(member: tarfile.TarInfo, top: str) -> tuple[str, ...] | None:
    """Path parts of a member under ``<top>/<Subject>/``, or None for strays and macOS litter."""
    parts = tuple(p for p in PurePosixPath(member.name).parts if p not in (".", ""))
    if len(parts) < 2 or parts[0] != top or any(p.startswith(".") for p in parts[1:]):
        return None  # outside the layout, .DS_Store, ._AppleDouble
    if len(parts) == 2 and not member.isdir():
        return None  # a file beside the subject folders
    return parts


def subjects_in_archive(path: str | os.PathLike) -> list[str]:
    """Subject folder names in ``<Cohort>_volumes/<Subject>/`` of a Mindboggle archive, sorted."""
    top = f"{cohort_of(Path(path).name)}_volumes"
    with tarfile.open(path) as tar:
        parts = (_layout_parts(m, top) for m in tar.getmembers())
        return sorted({p[1] for p in parts if p is not None})


def extract_subjects(
    archive: str | os.PathLike, subjects: list[str], out_dir: str | os.PathLike
) -> list[Path]:
    """Extract only ``subjects`` to ``out_dir/<Cohort>_volumes/<Subject>/``; return their folders.

    Members pass ``tarfile``'s ``data`` filter into a temporary folder inside ``out_dir``, then
    each whole subject folder is renamed into place; folders already there are kept. A subject
    not in the archive raises ValueError listing the available ones.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    top = f"{cohort_of(archive.name)}_volumes"
    with tarfile.open(archive) as tar:
        members = [(m, _layout_parts(m, top)) for m in tar.getmembers()]
        available = sorted({p[1] for _, p in members if p is not None})
        missing = sorted(set(subjects) - set(available))
        if missing:
            raise ValueError(
                f"{archive}: subjects {', '.join(missing)} not in the archive; "
                f"available: {', '.join(available)}"
            )
        todo = {s for s in subjects if not (out_dir / top / s).is_dir()}
        (out_dir / top).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=out_dir))
        try:
            tar.extractall(
                tmp, members=[m for m, p in members if p and p[1] in todo], filter="data"
            )
            for subject in sorted(todo):
                os.replace(tmp / top / subject, out_dir / top / subject)
                log.info("%s: extracted %s", archive.name, subject)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [out_dir / top / s for s in subjects]


def cohort_of_subject(subject: str) -> str:
    """The cohort a subject id names: the id without its last ``-<n>`` (``NKI-TRT-20-5``)."""
    return re.sub(r"-\d+$", "", subject)


class _Archives:
    """The archives of one OSF folder, downloaded on first use and listed once."""

    def __init__(self, remotes: list[RemoteFile], folder: Path, **download_options) -> None:
        self.remotes = {cohort_of(f.name): f for f in remotes if ARCHIVE_RE.fullmatch(f.name)}
        self.paths = {cohort: folder / f.name for cohort, f in self.remotes.items()}
        self.options = download_options
        self.subjects: dict[str, list[str]] = {}  # cohort -> its subjects, once downloaded

    def subjects_of(self, cohort: str) -> list[str]:
        if cohort not in self.subjects:
            download(self.remotes[cohort], self.paths[cohort], **self.options)
            self.subjects[cohort] = subjects_in_archive(self.paths[cohort])
        return self.subjects[cohort]

    def find(self, subject: str) -> str:
        """The cohort of a subject whose id names no archive (Extra-18 holds HLN-12-1, ...).

        Archives already downloaded are searched first, then the others by name until found.
        """
        for cohort in sorted(self.remotes, key=lambda c: (c not in self.subjects, c)):
            if subject in self.subjects_of(cohort):
                return cohort
        every = sorted(s for c in self.remotes for s in self.subjects[c])
        raise ValueError(
            f"subject {subject} is in no archive on OSF; available: {', '.join(every)}"
        )


def _manifest(archives: _Archives, out_dir: Path) -> pd.DataFrame:
    """The archives used: file, size, hash, source URL, download time (UTC, mtime)."""
    rows = []
    for cohort in sorted(archives.subjects):
        remote, path = archives.remotes[cohort], archives.paths[cohort]
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        rows.append(
            {
                "file": str(path.relative_to(out_dir)),
                "size": path.stat().st_size,
                "hash_type": "sha256" if remote.sha256 else "md5",
                "hash": remote.sha256 or remote.md5 or "",
                "url": remote.url,
                "downloaded_utc": when.isoformat(timespec="seconds"),
            }
        )
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def fetch_mindboggle(
    source: OSFFolder,
    cohorts: list[str],
    subjects: list[str],
    out_dir: str | os.PathLike,
    **download_options,
) -> list[str]:
    """Download the archives of ``source`` needed for ``cohorts`` and ``subjects``; extract
    only those subjects.

    Archives are kept in ``out_dir/archives/``, subjects go to
    ``out_dir/<Cohort>_volumes/<Subject>/``, and ``out_dir/manifest.tsv`` records the archives.
    A subject's archive is the cohort its id names (:func:`cohort_of_subject`); an id that names
    no archive is looked for with :meth:`_Archives.find`. ``download_options`` (``timeout``,
    ``retries``, ``backoff``) go to :func:`list_archives` and :func:`download`. Returns the
    selected subject ids (all of ``cohorts`` plus ``subjects``), sorted. Raises ValueError for an
    empty selection, an unknown cohort or an absent subject (each listing what is available) and
    :class:`DownloadError` when listing or downloading fails.
    """
    if not cohorts and not subjects:
        raise ValueError("select at least one cohort or subject to fetch from OSF")
    out_dir = Path(out_dir)
    listing = list_archives(source.api_url, source.project, source.folder, **download_options)
    archives = _Archives(listing, out_dir / "archives", **download_options)
    unknown = sorted(set(cohorts) - set(archives.remotes))
    if unknown:
        raise ValueError(
            f"unknown cohorts {', '.join(unknown)}; available on OSF: "
            f"{', '.join(sorted(archives.remotes))}"
        )
    chosen = {cohort: set(archives.subjects_of(cohort)) for cohort in cohorts}
    for subject in subjects:
        cohort = cohort_of_subject(subject)
        if cohort not in archives.remotes:
            cohort = archives.find(subject)
        chosen.setdefault(cohort, set()).add(subject)
    for cohort, wanted in sorted(chosen.items()):
        archives.subjects_of(cohort)
        extract_subjects(archives.paths[cohort], sorted(wanted), out_dir)
    write_table(_manifest(archives, out_dir), out_dir / "manifest.tsv")
    return sorted(set().union(*chosen.values()))
