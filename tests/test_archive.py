"""Archives are streamed and every member checked before use."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import pytest

from dsreg import ArchiveError
from dsreg.fetching.archive import check_member_name, detect, members, open_compressed


def make_tar(path, entries, mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            elif kind == "device":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)
    return path


def test_tar_gz_members_stream_in_order(tmp_path):
    path = make_tar(tmp_path / "a.tar.gz", [("top", "dir", b""), ("top/A/x.png", "file", b"xx"), ("./top/B/y.png", "file", b"y")])
    assert detect(path) == "gzip"
    assert list(members(path)) == [("top/A/x.png", b"xx"), ("top/B/y.png", b"y")]


def test_plain_tar_and_zip(tmp_path):
    plain = make_tar(tmp_path / "a.tar", [("a.txt", "file", b"1")], mode="w")
    assert detect(plain) == "tar" and list(members(plain)) == [("a.txt", b"1")]
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("d/", b"")
        zf.writestr("d/b.txt", b"22")
    assert detect(zpath) == "zip" and list(members(zpath)) == [("d/b.txt", b"22")]


@pytest.mark.parametrize(
    "entry, message",
    [
        (("../evil.png", "file", b"x"), "climbs out with '..'"),
        (("a/../../evil.png", "file", b"x"), "climbs out with '..'"),
        (("/etc/passwd", "file", b"x"), "has an absolute path"),
        (("a/link", "symlink", "/etc/passwd"), "is a link"),
        (("a/dev", "device", b""), "is a device or special file"),
    ],
)
def test_hostile_members_are_refused_by_name(tmp_path, entry, message):
    path = make_tar(tmp_path / "bad.tar.gz", [("ok.txt", "file", b"fine"), entry])
    with pytest.raises(ArchiveError, match=f"bad.tar.gz: member '{entry[0]}' {message}"):
        list(members(path))


def test_zip_with_parent_path_is_refused(tmp_path):
    zpath = tmp_path / "bad.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("../up.txt", b"x")
    with pytest.raises(ArchiveError, match="climbs out"):
        list(members(zpath))


def test_truncated_archive_is_a_clear_error(tmp_path):
    path = make_tar(tmp_path / "t.tar.gz", [(f"f{i}", "file", bytes(5000)) for i in range(20)])
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ArchiveError, match=r"^t.tar.gz is cut short \(Compressed file ended.*fetch it again with force=True"):
        list(members(path))


def test_open_compressed_reads_gzip_and_plain(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"hello"))
    (tmp_path / "x").write_bytes(b"plain")
    with open_compressed(tmp_path / "x.gz") as fh:
        assert fh.read() == b"hello"
    with open_compressed(tmp_path / "x") as fh:
        assert fh.read() == b"plain"


def test_member_names_normalise():
    assert check_member_name("./a//b/./c.png") == "a/b/c.png"
    assert check_member_name("a\\b.png") == "a/b.png"
    with pytest.raises(ArchiveError):
        check_member_name("C:/windows")
