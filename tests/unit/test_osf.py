import csv
import errno
import os
import tarfile
import time
from datetime import datetime

import pytest
import requests

from meshseg.data import osf
from meshseg.data.osf import (
    DownloadError,
    OSFFolder,
    cohort_of,
    cohort_of_subject,
    download,
    extract_subjects,
    fetch_mindboggle,
    list_archives,
    subjects_in_archive,
)
from tests.conftest import everything_in

pytest_plugins = ["tests.osf_server"]  # the fake_osf fixture

MMRR = "MMRR-21_volumes.tar.gz"
FAST = {"timeout": 5, "retries": 3, "backoff": 0.01}
GIVE_UP = {**FAST, "retries": 2}  # the fault tests count two retries


def remote_of(osf, name):
    return next(f for f in list_archives(osf.api_url) if f.name == name)


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or ".part" in p.name)


def test_list_archives_reads_the_folder_without_rate_limit(fake_osf):
    start = time.monotonic()
    files = list_archives(fake_osf.api_url + "/")  # a trailing slash is tolerated
    assert time.monotonic() - start < 1  # osfclient's limiter would take >= 6 s for 7 GETs
    assert [f.name for f in files] == sorted(fake_osf.files)
    mmrr = files[[f.name for f in files].index(MMRR)]
    assert mmrr.size == len(fake_osf.files[MMRR]) and len(mmrr.sha256) == 64
    assert mmrr.url == fake_osf.url_of(MMRR)
    assert fake_osf.downloads() == 0


def test_list_archives_retries_a_5xx_and_fails_clearly_on_4xx(fake_osf):
    fake_osf.faults["/v2/nodes/9ahyp/"] = ["503", "504"]
    assert len(list_archives(fake_osf.api_url, retries=3, backoff=0.01)) == 3
    assert fake_osf.requests["/v2/nodes/9ahyp/"] == 3
    fake_osf.faults["/v2/guids/9ahyp/"] = ["404"]
    with pytest.raises(DownloadError, match="cannot list 9ahyp/Mindboggle101_volumes .*404"):
        list_archives(fake_osf.api_url, retries=3, backoff=0.01)


def test_server_tolerates_double_slashes(fake_osf):
    response = requests.get(fake_osf.api_url + "//guids/9ahyp/", timeout=5)
    assert response.json() == {"data": {"id": "9ahyp", "type": "nodes"}}


def test_list_archives_unknown_folder_names_the_folders(fake_osf):
    with pytest.raises(DownloadError, match="no folder 'nope'.*Mindboggle101_volumes"):
        list_archives(fake_osf.api_url, folder="nope")


def test_fetch_downloads_only_the_chosen_archives(fake_osf, tmp_path):
    got = fetch_mindboggle(
        OSFFolder(fake_osf.api_url), ["NKI-TRT-20"], ["MMRR-21-2"], tmp_path, **FAST
    )
    assert got == ["MMRR-21-2", "NKI-TRT-20-1", "NKI-TRT-20-5"]
    assert fake_osf.downloads("Extra-18_volumes.tar.gz") == 0
    assert fake_osf.downloads(MMRR) == fake_osf.downloads("NKI-TRT-20_volumes.tar.gz") == 1
    assert sorted(p.name for p in (tmp_path / "MMRR-21_volumes").iterdir()) == ["MMRR-21-2"]
    assert sorted(p.name for p in (tmp_path / "NKI-TRT-20_volumes" / "NKI-TRT-20-5").iterdir()) == [
        "labels.DKT31.manual+aseg.nii.gz",
        "t1weighted.nii.gz",
    ]
    assert not (tmp_path / "__MACOSX").exists() and not (tmp_path / "README.txt").exists()
    assert leftovers(tmp_path) == []


def test_subject_not_named_after_its_archive_is_found(fake_osf, tmp_path):
    assert fetch_mindboggle(OSFFolder(fake_osf.api_url), [], ["HLN-12-1"], tmp_path, **FAST) == [
        "HLN-12-1"
    ]
    assert (tmp_path / "Extra-18_volumes" / "HLN-12-1" / "t1weighted.nii.gz").is_file()
    assert fake_osf.downloads() == 1  # Extra-18 comes first by name; the search stops there


def test_rerun_makes_no_download_request(fake_osf, tmp_path):
    fetch_mindboggle(OSFFolder(fake_osf.api_url), ["MMRR-21"], [], tmp_path, **FAST)
    before = fake_osf.downloads()
    assert fetch_mindboggle(OSFFolder(fake_osf.api_url), ["MMRR-21"], [], tmp_path, **FAST) == [
        "MMRR-21-1",
        "MMRR-21-2",
    ]
    assert before == 1 and fake_osf.downloads() == before


def test_absent_subject_lists_the_available_ones(fake_osf, tmp_path):
    available = "available: MMRR-21-1, MMRR-21-2"
    with pytest.raises(ValueError, match=f"MMRR-21-9 not in the archive; {available}"):
        fetch_mindboggle(OSFFolder(fake_osf.api_url), [], ["MMRR-21-9"], tmp_path, **FAST)
    with pytest.raises(ValueError, match="Nobody-3 is in no archive on OSF; available: Colin27-1"):
        fetch_mindboggle(OSFFolder(fake_osf.api_url), [], ["Nobody-3"], tmp_path, **FAST)


def test_unknown_cohort_lists_the_available_ones(fake_osf, tmp_path):
    with pytest.raises(ValueError, match="cohorts OASIS-TRT-20; available on OSF: Extra-18, MMRR"):
        fetch_mindboggle(OSFFolder(fake_osf.api_url), ["OASIS-TRT-20"], [], tmp_path, **FAST)
    assert fake_osf.downloads() == 0


def test_nothing_selected_is_an_error(fake_osf, tmp_path):
    with pytest.raises(ValueError, match="at least one cohort or subject"):
        fetch_mindboggle(OSFFolder(fake_osf.api_url), [], [], tmp_path)


@pytest.mark.parametrize("hash_types", [("md5", "sha256"), ("md5",)])
def test_wrong_hash_fails_and_leaves_no_file(fake_osf, tmp_path, hash_types):
    fake_osf.hash_types = hash_types
    remote = remote_of(fake_osf, MMRR)
    fake_osf.faults[MMRR] = ["badhash"]
    algorithm = hash_types[-1]
    with pytest.raises(
        DownloadError,
        match=f"{MMRR}: downloaded file has {algorithm} [0-9a-f]+, "
        f"expected {getattr(remote, algorithm)}",
    ):
        download(remote, tmp_path / MMRR, **FAST)
    assert list(tmp_path.iterdir()) == [] and fake_osf.downloads(MMRR) == 1


def test_dropped_connection_is_resumed_with_range(fake_osf, tmp_path):
    fake_osf.faults[MMRR] = ["drop"]
    path = download(remote_of(fake_osf, MMRR), tmp_path / MMRR, **FAST)
    assert path.read_bytes() == fake_osf.files[MMRR]
    first, resumed = fake_osf.ranges[MMRR]  # what reached disk before the drop is kept
    assert first is None and 0 < int(resumed[6:-1]) <= len(fake_osf.files[MMRR]) // 2
    assert leftovers(tmp_path) == []


def test_resume_refused_starts_over(fake_osf, tmp_path):
    fake_osf.faults[MMRR] = ["drop", "norange"]
    path = download(remote_of(fake_osf, MMRR), tmp_path / MMRR, **FAST)
    assert path.read_bytes() == fake_osf.files[MMRR] and fake_osf.downloads(MMRR) == 2


def test_503_then_200_succeeds(fake_osf, tmp_path):
    fake_osf.faults[MMRR] = ["503"]
    path = download(remote_of(fake_osf, MMRR), tmp_path / MMRR, **FAST)
    assert path.read_bytes() == fake_osf.files[MMRR] and fake_osf.downloads(MMRR) == 2


def test_missing_content_length_works(fake_osf, tmp_path):
    fake_osf.faults[MMRR] = ["nolength"]
    path = download(remote_of(fake_osf, MMRR), tmp_path / MMRR, **FAST)
    assert path.read_bytes() == fake_osf.files[MMRR] and fake_osf.downloads(MMRR) == 1


def test_4xx_is_not_retried(fake_osf, tmp_path):
    fake_osf.faults[MMRR] = ["404"]
    with pytest.raises(DownloadError, match=f"{MMRR}: HTTP 404 .*not retried"):
        download(remote_of(fake_osf, MMRR), tmp_path / MMRR, **FAST)
    assert fake_osf.downloads(MMRR) == 1


def test_retries_exhausted_names_url_and_last_error(fake_osf, tmp_path):
    remote = remote_of(fake_osf, MMRR)
    fake_osf.faults[MMRR] = ["500", "502", "503"]
    with pytest.raises(DownloadError, match=f"{remote.url}: .* 2 retries; last error: HTTP 503"):
        download(remote, tmp_path / MMRR, timeout=5, retries=2, backoff=0.01)
    assert not (tmp_path / MMRR).exists()


def test_stalled_server_times_out_then_resumes(fake_osf, tmp_path):
    remote = remote_of(fake_osf, MMRR)
    fake_osf.faults[MMRR] = ["stall"]
    start = time.monotonic()
    with pytest.raises(DownloadError, match="gave up after 0 retries; last error: .*timed out"):
        download(remote, tmp_path / MMRR, timeout=0.2, retries=0)
    assert time.monotonic() - start < 2 and not (tmp_path / MMRR).exists()
    fake_osf.faults[MMRR] = ["stall"]
    path = download(remote, tmp_path / MMRR, timeout=0.2, retries=1, backoff=0.01)
    assert path.read_bytes() == fake_osf.files[MMRR]
    assert fake_osf.ranges[MMRR][-1].startswith("bytes=")


def test_complete_part_file_is_verified_without_a_request(fake_osf, tmp_path):
    (tmp_path / f"{MMRR}.part").write_bytes(fake_osf.files[MMRR])
    assert download(remote_of(fake_osf, MMRR), tmp_path / MMRR, **FAST).is_file()
    assert fake_osf.downloads(MMRR) == 0 and leftovers(tmp_path) == []


def test_whole_file_is_kept_and_damaged_one_replaced(fake_osf, tmp_path):
    remote = remote_of(fake_osf, MMRR)
    (tmp_path / MMRR).write_bytes(fake_osf.files[MMRR])
    download(remote, tmp_path / MMRR, **FAST)
    assert fake_osf.downloads(MMRR) == 0
    (tmp_path / MMRR).write_bytes(b"damaged")
    assert download(remote, tmp_path / MMRR, **FAST).read_bytes() == fake_osf.files[MMRR]
    assert fake_osf.downloads(MMRR) == 1


def test_manifest_records_each_archive(fake_osf, tmp_path):
    fetch_mindboggle(OSFFolder(fake_osf.api_url), ["MMRR-21"], ["NKI-TRT-20-1"], tmp_path, **FAST)
    with open(tmp_path / "manifest.tsv", newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    lines = (tmp_path / "manifest.tsv").read_text().splitlines()
    assert lines[0] == "file\tsize\thash_type\thash\turl\tdownloaded_utc" and '"' not in lines[1]
    assert [r["file"] for r in rows] == [
        "archives/MMRR-21_volumes.tar.gz",
        "archives/NKI-TRT-20_volumes.tar.gz",
    ]
    remote = remote_of(fake_osf, MMRR)
    assert rows[0] | {"downloaded_utc": ""} == {
        "file": "archives/MMRR-21_volumes.tar.gz",
        "size": str(remote.size),
        "hash_type": "sha256",
        "hash": remote.sha256,
        "url": remote.url,
        "downloaded_utc": "",
    }
    assert datetime.fromisoformat(rows[0]["downloaded_utc"]).utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "name,cohort",
    [("MMRR-21_volumes.tar.gz", "MMRR-21"), ("NKI-TRT-20_volumes.tar.gz", "NKI-TRT-20")],
)
def test_cohort_of(name, cohort):
    assert cohort_of(name) == cohort


def test_cohort_of_rejects_other_names():
    with pytest.raises(ValueError, match="README.md: not a Mindboggle archive name"):
        cohort_of("README.md")


def test_cohort_of_subject():
    assert cohort_of_subject("NKI-TRT-20-5") == "NKI-TRT-20"


def test_subjects_come_from_the_archive_not_its_strays(fake_osf, tmp_path):
    path = tmp_path / MMRR
    path.write_bytes(fake_osf.files[MMRR])
    assert subjects_in_archive(path) == ["MMRR-21-1", "MMRR-21-2"]
    with tarfile.open(path) as tar:
        assert "MMRR-21_volumes/.DS_Store" in tar.getnames()


def test_extract_missing_subject_writes_nothing(fake_osf, tmp_path):
    path = tmp_path / MMRR
    path.write_bytes(fake_osf.files[MMRR])
    with pytest.raises(ValueError, match="MMRR-21-7 not in the archive; available: MMRR-21-1"):
        extract_subjects(path, ["MMRR-21-1", "MMRR-21-7"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_disk_full_during_osf_download_names_the_file_and_leaves_nothing(
    fake_osf, tmp_path, monkeypatch
):
    remote = next(f for f in osf.list_archives(fake_osf.api_url) if f.name == MMRR)

    class FillsUp:
        """A file whose second write finds the disk full."""

        def __init__(self, stream):
            self.stream, self.writes = stream, 0

        def write(self, data):
            self.writes += 1
            if self.writes > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.stream.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

    def fake_open(path, mode="r", *args, **kwargs):
        stream = open(path, mode, *args, **kwargs)
        return FillsUp(stream) if "w" in mode or "a" in mode else stream

    monkeypatch.setattr(osf, "open", fake_open, raising=False)
    dest = tmp_path / "archives" / MMRR
    with pytest.raises(
        osf.DownloadError,
        match=rf"^{dest}: not written \(No space left on device\); "
        rf"the partial download {MMRR}\.part was deleted$",
    ):
        osf.download(remote, dest, **GIVE_UP)
    assert everything_in(tmp_path / "archives") == [] and fake_osf.downloads(MMRR) == 1


def test_osf_download_into_a_folder_that_cannot_be_made_fails_naming_the_file(fake_osf, tmp_path):
    remote = next(f for f in osf.list_archives(fake_osf.api_url) if f.name == MMRR)
    (tmp_path / "archives").write_text("a file where the folder should be")
    dest = tmp_path / "archives" / MMRR
    with pytest.raises(osf.DownloadError, match=rf"^{dest}: cannot create the folder "):
        osf.download(remote, dest, **GIVE_UP)
    assert fake_osf.downloads(MMRR) == 0


def test_osf_connection_dropped_every_time_gives_up_naming_the_file_then_resumes(
    fake_osf, tmp_path
):
    remote = next(f for f in osf.list_archives(fake_osf.api_url) if f.name == MMRR)
    fake_osf.faults[MMRR] = ["drop"] * 3
    dest = tmp_path / MMRR
    with pytest.raises(
        osf.DownloadError,
        match=rf"^{remote.url}: download of {MMRR} gave up after 2 "
        r"retries; last error: ",
    ):
        osf.download(remote, dest, **GIVE_UP)
    assert fake_osf.downloads(MMRR) == 3 and not dest.exists()
    assert everything_in(tmp_path) == [f"{MMRR}.part"]  # kept to resume, never under the final name
    assert osf.download(remote, dest, **GIVE_UP).read_bytes() == fake_osf.files[MMRR]
    assert fake_osf.ranges[MMRR][-1].startswith("bytes=") and everything_in(tmp_path) == [MMRR]


def test_osf_listing_5xx_every_time_gives_a_clear_error(fake_osf):
    fake_osf.faults["/v2/nodes/9ahyp/"] = ["503"] * 3
    with pytest.raises(
        osf.DownloadError,
        match=rf"^{fake_osf.api_url}: cannot list "
        r"9ahyp/Mindboggle101_volumes \(.*503",
    ):
        osf.list_archives(fake_osf.api_url, retries=2, backoff=0.01)
    assert fake_osf.requests["/v2/nodes/9ahyp/"] == 3
