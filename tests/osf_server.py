"""A local fake of the OSF v2 API and WaterButler downloads, as osfclient 0.0.5 calls them.

It serves one project (``9ahyp``) whose osfstorage holds a ``Mindboggle101_volumes`` folder of
small archives in the Mindboggle layout (plus a decoy folder and a stray root file), with the
JSON fields osfclient reads (docs/references.md: OSF API and osfclient), absolute URLs, pages of
two items linked by ``links.next``, and downloads with ``Content-Length`` and ``Range`` (206).

Fault plan: ``server.faults["MMRR-21_volumes.tar.gz"] = ["503", "drop"]`` makes the next
download requests of that file fail in that order, one fault per request:

- ``"<code>"`` (e.g. ``"503"``, ``"404"``): answer with that HTTP status;
- ``"drop"``: headers with the full ``Content-Length``, half the body, then close;
- ``"stall"``: headers and half the body, then silence for ``stall_s`` seconds, then close;
- ``"badhash"``: the right length, one byte changed;
- ``"nolength"``: no ``Content-Length`` (the body ends when the connection closes);
- ``"norange"``: ignore ``Range`` and send the whole file with 200.

An API path (e.g. ``"/v2/nodes/9ahyp/"``) may also be a key; its faults are HTTP status codes.
Paths are matched after collapsing ``//`` and dropping the query.

To use the ``fake_osf`` fixture, put ``pytest_plugins = ["tests.osf_server"]`` in the test
module (or in the root ``tests/conftest.py`` to offer it to every test). Importing the fixture
by name also works, but linters then flag the shadowed import.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import re
import tarfile
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nibabel as nib
import numpy as np
import pytest

PROJECT = "9ahyp"
FOLDER_ID = "5a1b2c3d4e5f60718293a4b5"
PER_PAGE = 2
DEFAULT_LAYOUT = {
    "MMRR-21": ["MMRR-21-1", "MMRR-21-2"],
    "NKI-TRT-20": ["NKI-TRT-20-1", "NKI-TRT-20-5"],
    "Extra-18": ["Colin27-1", "HLN-12-1"],  # ids that do not name their archive, as on OSF
}


def _nifti_gz(data: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, np.eye(4))
    return gzip.compress(img.to_bytes(), mtime=0)


def make_archive(cohort: str, subjects: list[str], seed: int = 0) -> bytes:
    """A ``<cohort>_volumes.tar.gz`` in the Mindboggle layout, with macOS litter and a stray file.

    Each subject folder holds a small ``t1weighted.nii.gz`` (48^3 noise, so an archive is a few
    hundred KB and a download spans several 64 KiB reads) and ``labels.DKT31.manual+aseg.nii.gz``.
    """
    rng = np.random.default_rng(seed)
    files = {}
    for subject in subjects:
        t1 = rng.integers(0, 255, (48, 48, 48), dtype=np.uint8)
        labels = rng.choice(np.array([0, 2, 41, 1002, 2002], np.int16), (12, 12, 12))
        files[subject] = {
            "t1weighted.nii.gz": _nifti_gz(t1),
            "labels.DKT31.manual+aseg.nii.gz": _nifti_gz(labels),
        }
    return archive_of(cohort, files)


def archive_of(cohort: str, subject_files: dict[str, dict[str, bytes]]) -> bytes:
    """``<cohort>_volumes.tar.gz`` holding ``<cohort>_volumes/<subject>/<file>`` for the given
    bytes, plus the litter real archives carry (``.DS_Store``, ``._*``, ``__MACOSX``, a README).
    """
    top = f"{cohort}_volumes"
    entries: list[tuple[str, bytes | None]] = [(top, None), (f"{top}/.DS_Store", b"\0Bud1")]
    for subject, files in subject_files.items():
        entries.append((f"{top}/{subject}", None))
        entries += [(f"{top}/{subject}/{name}", data) for name, data in files.items()]
        entries += [
            (f"{top}/{subject}/.DS_Store", b"\0Bud1"),
            (f"{top}/{subject}/._t1weighted.nii.gz", b"\0\5\26\7"),
        ]
    entries += [("__MACOSX", None), (f"__MACOSX/{top}/._x", b"x"), ("README.txt", b"stray")]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_300_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def mindboggle_files(layout: dict[str, list[str]]) -> dict[str, bytes]:
    """Archive name -> bytes for each cohort of ``layout``."""
    return {
        f"{cohort}_volumes.tar.gz": make_archive(cohort, subjects, seed)
        for seed, (cohort, subjects) in enumerate(sorted(layout.items()))
    }


@dataclass
class FakeOSF:
    """State of a running fake server; tests read the counters and set faults and hashes."""

    files: dict[str, bytes]
    base: str = ""  # http://127.0.0.1:PORT
    faults: dict[str, list[str]] = field(default_factory=dict)
    hash_types: tuple[str, ...] = ("md5", "sha256")
    stall_s: float = 3.0
    requests: Counter = field(default_factory=Counter)  # path -> GET count
    ranges: dict[str, list[str | None]] = field(default_factory=lambda: defaultdict(list))
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def api_url(self) -> str:
        return f"{self.base}/v2"

    def file_id(self, name: str) -> str:
        return hashlib.md5(name.encode()).hexdigest()[:24]

    def url_of(self, name: str) -> str:
        return f"{self.base}/wb/v1/resources/{PROJECT}/providers/osfstorage/{self.file_id(name)}"

    def downloads(self, name: str | None = None) -> int:
        """GET requests to one file's download URL (all files when ``name`` is None)."""
        names = [name] if name else list(self.files)
        return sum(self.requests[self.url_of(n).removeprefix(self.base)] for n in names)


def _related(href: str) -> dict:
    return {"files": {"links": {"related": {"href": href, "meta": {}}}}}


def _entity(osf: FakeOSF, kind: str, name: str, entity_id: str, parent: str = "/") -> dict:
    """A file or folder of osfstorage with every field osfclient 0.0.5 reads."""
    wb = f"{osf.base}/wb/v1/resources/{PROJECT}/providers/osfstorage/{entity_id}"
    data = osf.files.get(name, b"")
    hashes = {
        h: (hashlib.new(h, data).hexdigest() if h in osf.hash_types and kind == "file" else None)
        for h in ("md5", "sha256")
    }
    slash = "/" if kind == "folder" else ""
    entity = {
        "id": entity_id,
        "type": "files",
        "attributes": {
            "kind": kind,
            "name": name,
            "path": f"/{entity_id}{slash}",
            "materialized_path": f"{parent}{name}{slash}",
            "provider": "osfstorage",
            "size": len(data) if kind == "file" else None,
            "date_created": None,
            "date_modified": None,
            "current_version": 1,
            "extra": {"hashes": hashes, "downloads": 0},
        },
        "links": {
            "info": f"{osf.base}/v2/files/{entity_id}/",
            "self": f"{osf.base}/v2/files/{entity_id}/",
            "move": wb,
            "upload": wb,
            "delete": wb,
            "new_folder": f"{wb}/?kind=folder",
            "download": f"{osf.base}/download/{entity_id}/",
            "html": f"{osf.base}/{PROJECT}/files/osfstorage/{entity_id}",
        },
    }
    if kind == "folder":
        entity["relationships"] = _related(
            f"{osf.base}/v2/nodes/{PROJECT}/files/osfstorage/{entity_id}/"
        )
    return entity


def _page(items: list[dict], url: str, page: int) -> dict:
    """One page of a listing, ``links.next`` pointing at the next page or null."""
    last = max(1, -(-len(items) // PER_PAGE))
    next_url = f"{url}?page={page + 1}" if page < last else None
    return {
        "data": items[(page - 1) * PER_PAGE : page * PER_PAGE],
        "links": {
            "first": None,
            "last": None,
            "prev": None,
            "next": next_url,
            "meta": {"total": len(items), "per_page": PER_PAGE},
        },
    }


def _json_for(osf: FakeOSF, path: str, page: int) -> dict | None:
    """The API document at ``path`` (no query, single slashes), or None for 404."""
    base, node = osf.base, f"/v2/nodes/{PROJECT}/"
    if path == f"/v2/guids/{PROJECT}/":
        return {"data": {"id": PROJECT, "type": "nodes"}}
    if path == node:
        return {
            "data": {
                "id": PROJECT,
                "type": "nodes",
                "attributes": {
                    "title": "Mindboggle",
                    "description": "",
                    "date_created": None,
                    "date_modified": None,
                    "category": "project",
                    "public": True,
                },
                "links": {"self": f"{base}{node}", "html": f"{base}/{PROJECT}/"},
                "relationships": _related(f"{base}{node}files/"),
            }
        }
    if path == f"{node}files/":
        wb = f"{base}/wb/v1/resources/{PROJECT}/providers/osfstorage/"
        return _page(
            [
                {
                    "id": f"{PROJECT}:osfstorage",
                    "type": "files",
                    "attributes": {
                        "kind": "folder",
                        "name": "osfstorage",
                        "path": "/",
                        "node": PROJECT,
                        "provider": "osfstorage",
                    },
                    "links": {"upload": wb, "new_folder": f"{wb}?kind=folder"},
                    "relationships": _related(f"{base}{node}files/osfstorage/"),
                }
            ],
            f"{base}{path}",
            1,
        )
    if path == f"{node}files/osfstorage/":
        items = [
            _entity(osf, "folder", "Mindboggle101_volumes", FOLDER_ID),
            _entity(osf, "folder", "Mindboggle101_surfaces", "decoy0000000000000000000"),
            _entity(osf, "file", "README.md", "readme000000000000000000"),
        ]
        return _page(items, f"{base}{path}", page)
    if path == f"{node}files/osfstorage/{FOLDER_ID}/":
        items = [
            _entity(osf, "file", name, osf.file_id(name), "/Mindboggle101_volumes/")
            for name in sorted(osf.files)
        ]
        return _page(items, f"{base}{path}", page)
    return None


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0 handler: one request per connection, so a body may end at close."""

    osf: FakeOSF

    def log_message(self, format, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        path, _, query = re.sub("/+", "/", self.path).partition("?")
        self.osf.requests[path] += 1
        names = {self.osf.url_of(n).removeprefix(self.osf.base): n for n in self.osf.files}
        if path in names:
            return self._send_file(names[path])
        plan = self.osf.faults.get(path, [])
        if plan:
            return self.send_error(int(plan.pop(0)))
        page = re.search(r"page=(\d+)", query)
        document = _json_for(self.osf, path, int(page[1]) if page else 1)
        if document is None:
            return self.send_error(404)
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.api+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, name: str) -> None:
        data, plan = self.osf.files[name], self.osf.faults.get(name, [])
        fault = plan.pop(0) if plan else None
        self.osf.ranges[name].append(self.headers.get("Range"))
        if fault and fault.isdigit():
            return self.send_error(int(fault))
        if fault == "badhash":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match[1]) if match and fault != "norange" else 0
        if start >= len(data) > 0:
            return self.send_error(416)
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if fault != "nolength":
            self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        body = data[start:]
        if fault in ("drop", "stall"):
            self.wfile.write(body[: len(body) // 2])
            if fault == "stall":
                self.osf.stop.wait(self.osf.stall_s)
            return
        self.wfile.write(body)


def serve(files: dict[str, bytes]) -> tuple[FakeOSF, ThreadingHTTPServer]:
    """Start a fake OSF on a free port of 127.0.0.1 in a daemon thread."""
    osf = FakeOSF(files)
    handler = type("Handler", (_Handler,), {"osf": osf})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    osf.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    return osf, server


@functools.cache
def default_files() -> dict[str, bytes]:
    """The archives of :data:`DEFAULT_LAYOUT`, built once per process."""
    return mindboggle_files(DEFAULT_LAYOUT)


@pytest.fixture
def fake_osf(monkeypatch):
    """A fresh fake OSF serving :data:`DEFAULT_LAYOUT`; yields its :class:`FakeOSF` state."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    osf, server = serve(dict(default_files()))
    yield osf
    osf.stop.set()
    server.shutdown()
    server.server_close()
