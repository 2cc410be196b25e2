"""Hostile archives (dsreg.testing.hostile): each is refused with one line, leaves no prepared data, and bombs stay small in memory."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsreg
from dsreg.cli import cli
from dsreg.fetching import archive
from dsreg.testing import hostile

ESCAPE_MESSAGES = {
    "dotdot": "dotdot.tar.gz: member '../../evil.txt' climbs out with '..'; refusing to read this archive",
    "absolute": "absolute.tar.gz: member '/tmp/evil.txt' has an absolute path; refusing to read this archive",
    "symlink": "symlink.tar.gz: member 'ok/passwd' is a link; refusing to read this archive",
    "hardlink": "hardlink.tar.gz: member 'ok/shadow' is a link; refusing to read this archive",
    "device": "device.tar.gz: member 'ok/null' is a device or special file; refusing to read this archive",
    "fifo": "fifo.tar.gz: member 'ok/pipe' is a device or special file; refusing to read this archive",
    "gnu-long-name": "gnu-long-name.tar.gz: member 'ok/" + "d" * 110 + "/../../../evil.txt' climbs out with '..'; "
    "refusing to read this archive",
    "pax-path": "pax-path.tar.gz: member '../evil.txt' climbs out with '..'; refusing to read this archive",
}
ADVICE = "fetch it again with force=True, or hand over a good copy with from_path=PATH"  # the CLI says --force, --from PATH
CLI_ADVICE = "fetch it again with `--force`, or hand over a good copy with `--from PATH`"
DAMAGED_MESSAGES = {
    "truncated-gzip": "truncated.tar.gz is cut short (Compressed file ended before the end-of-stream marker was reached); "
    f"the download is incomplete or damaged: {ADVICE}",
    "corrupt-deflate": "corrupt-deflate.tar.gz holds corrupt gzip data (Error -3 while decompressing data: invalid block type); "
    f"the file is damaged: {ADVICE}",
    "corrupt-zip-deflate": "corrupt-deflate.zip holds corrupt compressed data after 1 member (Error -3 while decompressing data: "
    f"invalid block type); the file is damaged: {ADVICE}",
    "bad-header-checksum": f"bad-checksum.tar.gz is not a readable tar archive after 4 members (bad checksum in a tar header): {ADVICE}",
    "corrupt-bz2": f"corrupt.tar.bz2 holds corrupt bzip2 data (Invalid data stream); the file is damaged: {ADVICE}",
    "corrupt-xz": f"corrupt.tar.xz holds corrupt xz data (Corrupt input data); the file is damaged: {ADVICE}",
}


@pytest.fixture(autouse=True)
def no_user_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DSREG_MAX_MEMBER", "DSREG_MAX_EXPANDED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DSREG_CONFIG", str(tmp_path / "no-config.toml"))


def test_every_builder_is_covered() -> None:
    assert set(hostile.ESCAPES) == set(ESCAPE_MESSAGES) and set(hostile.DAMAGED) == set(DAMAGED_MESSAGES)


@pytest.mark.parametrize("case", sorted(hostile.ESCAPES))
def test_escapes_are_refused_by_name_before_any_member_is_handed_out(tmp_path: Path, case: str) -> None:
    path = hostile.ESCAPES[case](tmp_path)
    got = []
    with pytest.raises(dsreg.ArchiveError) as caught:
        for item in archive.members(path):
            got.append(item)
    assert str(caught.value) == ESCAPE_MESSAGES[case]
    assert got == [("ok/first.txt", b"a harmless first member\n")]  # streamed: the refusal comes at the member


@pytest.mark.parametrize("case", sorted(hostile.DAMAGED))
def test_damaged_archives_are_one_line_with_advice(tmp_path: Path, case: str) -> None:
    path = hostile.DAMAGED[case](tmp_path)
    with pytest.raises(dsreg.ArchiveError) as caught:
        list(archive.members(path))
    assert str(caught.value) == DAMAGED_MESSAGES[case]
    assert isinstance(caught.value.__cause__, Exception)  # the decompressor's own error stays for --debug


# -- limits -----------------------------------------------------------------------------------------
def test_a_member_over_the_limit_is_refused_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile.tar_bomb(tmp_path, 8 << 20, 1)
    monkeypatch.setenv("DSREG_MAX_MEMBER", "4MiB")
    with pytest.raises(dsreg.ArchiveError) as caught:
        list(archive.members(path))
    assert str(caught.value) == (
        "bomb-8M-1.tar.gz: member 'bomb/00000.bin' expands to 8MiB, over the 4MiB one member may hold "
        "(DSREG_MAX_MEMBER); if the archive is genuine, set DSREG_MAX_MEMBER=8MiB and fetch again"
    )
    monkeypatch.setenv("DSREG_MAX_MEMBER", "8MiB")  # the advice, followed literally
    assert [len(data) for _, data in archive.members(path)] == [8 << 20]


@pytest.mark.parametrize("make", [hostile.tar_bomb, hostile.zip_bomb], ids=["tar", "zip"])
def test_an_archive_over_the_total_is_refused_at_the_member_that_passes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make) -> None:
    path = make(tmp_path, 10 << 20, 10)
    monkeypatch.setenv("DSREG_MAX_EXPANDED", "4100KiB")  # four members of 1 MiB and their tar headers fit
    seen = []
    with pytest.raises(dsreg.ArchiveError) as caught:
        for name, _ in archive.members(path):
            seen.append(name)
    assert str(caught.value) == (
        f"{path.name} expands to more than 4100KiB (DSREG_MAX_EXPANDED) at member 'bomb/00004.bin': refused as an "
        "archive bomb; if the archive is genuine, set DSREG_MAX_EXPANDED=17MiB (or more) and fetch again"
    )
    assert len(seen) == 4
    monkeypatch.setenv("DSREG_MAX_EXPANDED", re.search(r"DSREG_MAX_EXPANDED=(\S+)", str(caught.value))[1])  # the advice, literally
    assert len(list(archive.members(path))) == 10


def test_an_archive_of_countless_empty_members_is_a_bomb_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import tarfile

    path = tmp_path / "empty-members.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i in range(3000):  # 1.5 MB of headers, no data
            tar.addfile(tarfile.TarInfo(f"e/{i}"), io.BytesIO())
    monkeypatch.setenv("DSREG_MAX_EXPANDED", "1MiB")
    with pytest.raises(dsreg.ArchiveError, match=r"expands to more than 1MiB \(DSREG_MAX_EXPANDED\) at member 'e/2048'"):
        list(archive.members(path))


def test_a_compressed_file_is_bounded_read_whole_or_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile.gzip_bomb(tmp_path, 16 << 20)
    monkeypatch.setenv("DSREG_MAX_MEMBER", "4MiB")
    with archive.open_compressed(path) as fh, pytest.raises(dsreg.ArchiveError) as caught:
        fh.read()  # held whole in memory: bounded like one member
    assert str(caught.value) == (
        "bomb-16M.gz expands to more than the 4MiB a file read whole may hold (DSREG_MAX_MEMBER); "
        "if it is genuine, set DSREG_MAX_MEMBER=16MiB (or more) and fetch again"
    )
    with archive.open_compressed(path) as fh:  # read in pieces, the member limit does not apply
        assert sum(len(line) for line in fh) == 16 << 20
    monkeypatch.setenv("DSREG_MAX_EXPANDED", "8MiB")
    with archive.open_compressed(path) as fh, pytest.raises(dsreg.ArchiveError) as caught:
        while fh.read(1 << 16):
            pass
    assert str(caught.value) == (
        "bomb-16M.gz expands to more than 8MiB (DSREG_MAX_EXPANDED): refused as an archive bomb; "
        "if the archive is genuine, set DSREG_MAX_EXPANDED=32MiB (or more) and fetch again"
    )
    broken = tmp_path / "broken.gz"
    broken.write_bytes(hostile.truncated_gzip(tmp_path).read_bytes())
    with archive.open_compressed(broken) as fh, pytest.raises(dsreg.ArchiveError, match=r"^broken.gz is cut short \(Compressed file ended"):
        fh.read()


def test_a_zip_that_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    path = hostile.zip_lying_size(tmp_path, 20 << 20, claim=1000)
    with pytest.raises(dsreg.ArchiveError, match=r"^zip-lying-size.zip is not a readable zip archive \(Bad CRC-32"):
        list(archive.members(path))


def test_an_encrypted_zip_member_is_refused_by_name(tmp_path: Path) -> None:
    import struct
    import zipfile

    path = tmp_path / "secret.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/secret.txt", b"x" * 100)
    raw = bytearray(path.read_bytes())
    for magic, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose flags: bit 0, encrypted
        where = raw.find(magic) + at
        struct.pack_into("<H", raw, where, struct.unpack_from("<H", raw, where)[0] | 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(dsreg.ArchiveError) as caught:
        list(archive.members(path))
    assert str(caught.value) == (
        "secret.zip: member 'ok/secret.txt' is encrypted; dsreg reads only unencrypted archives: "
        "decrypt it yourself and hand it over with from_path=PATH"
    )
    assert caught.value.cli_message.endswith("hand it over with `--from PATH`")


def test_a_huge_header_record_is_refused_unread(tmp_path: Path) -> None:
    import io
    import tarfile

    path = tmp_path / "long.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("x" * 200)
        tar.addfile(info, io.BytesIO())
    raw = bytearray(path.read_bytes())
    raw[124:136] = b"%011o\0" % (2 << 20)  # the long-name record now claims 2 MiB
    raw[148:156] = b"        "
    raw[148:155] = b"%06o\0" % sum(raw[:512])
    path.write_bytes(bytes(raw))
    with pytest.raises(dsreg.ArchiveError, match=r"a tar header record \(type L\) claims 2MiB; names and pax headers stay under 1MiB"):
        list(archive.members(path))


def test_who_sets_the_limits_the_user_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile.tar_bomb(tmp_path, 2 << 20, 2)  # two members of 1 MiB
    with pytest.raises(dsreg.ArchiveError, match="over the 512KiB one member may hold"):
        list(archive.members(path, max_member="512KiB"))  # the dataset's argument
    with archive.for_dataset(max_member=1 << 19), pytest.raises(dsreg.ArchiveError, match="over the 512KiB"):
        list(archive.members(path))  # the dataset's Builder attribute, as prepare passes it
    with archive.for_dataset(max_member="64KiB"), pytest.raises(dsreg.ArchiveError, match="over the 512KiB"):
        list(archive.members(path, max_member="512KiB"))  # the argument before the attribute
    (tmp_path / "config.toml").write_text('[archive]\nmax_member = "2MiB"\n')
    monkeypatch.setenv("DSREG_CONFIG", str(tmp_path / "config.toml"))
    assert len(list(archive.members(path, max_member="512KiB"))) == 2  # the user's config file wins
    monkeypatch.setenv("DSREG_MAX_MEMBER", "100KiB")
    with pytest.raises(dsreg.ArchiveError, match="over the 100KiB"):
        list(archive.members(path))  # and the environment before the config file
    monkeypatch.setenv("DSREG_MAX_MEMBER", "lots")
    with pytest.raises(dsreg.ConfigError, match=r"^DSREG_MAX_MEMBER='lots' is not a size; write bytes or e.g. 512MiB, 2GiB$"):
        list(archive.members(path))


# -- through fetch and prepare: nothing half-made is left ----------------------------------------------
def archive_builder(path: Path, name: str, **attrs) -> type[dsreg.Builder]:
    """A dataset over one local archive: every member is an example of its size."""
    data = path.read_bytes()

    class FromArchive(dsreg.Builder):
        features = {"size": dsreg.Value("int64")}
        splits = ("train",)
        files = (dsreg.File(path.name, urls=(str(path),), size=len(data), sha256=hashlib.sha256(data).hexdigest()),)

        def generate(self, split, files, **config):
            for member, body in archive.members(files[path.name]):
                yield member, {"size": len(body)}

    FromArchive.name = name
    for key, value in attrs.items():
        setattr(FromArchive, key, value)
    return FromArchive


def assert_nothing_prepared(cache: Path, name: str) -> None:
    prepared = cache / "datasets" / name / "prepared"
    assert not prepared.exists() or list(prepared.iterdir()) == [], list(prepared.iterdir())


@pytest.mark.parametrize("case", ["dotdot", "symlink", "pax-path", "corrupt-deflate", "bad-header-checksum", "corrupt-zip-deflate"])
def test_fetch_of_a_hostile_archive_is_one_line_and_prepares_nothing(dsreg_cache: Path, dsreg_register, tmp_path: Path, case: str) -> None:
    path = {**hostile.ESCAPES, **hostile.DAMAGED}[case](tmp_path)
    dsreg_register(archive_builder(path, "hostile"))
    out = CliRunner().invoke(cli, ["fetch", "hostile", "--quiet"])
    assert out.exit_code == 1
    assert out.output == f"error: {({**ESCAPE_MESSAGES, **DAMAGED_MESSAGES})[case].replace(ADVICE, CLI_ADVICE)}\n"
    assert_nothing_prepared(dsreg_cache, "hostile")
    assert CliRunner().invoke(cli, ["info", "hostile"]).output.count("not prepared") == 1
    with pytest.raises(dsreg.ArchiveError):  # the Python API raises the same error
        dsreg.fetch("hostile", quiet=True)


def test_a_builder_attribute_bounds_its_archives_in_prepare(dsreg_cache: Path, dsreg_register, tmp_path: Path) -> None:
    path = hostile.tar_bomb(tmp_path, 4 << 20, 4)
    dsreg_register(archive_builder(path, "capped", max_expanded="2100KiB"), archive_builder(path, "plain"))
    with pytest.raises(dsreg.ArchiveError, match=r"expands to more than 2100KiB \(DSREG_MAX_EXPANDED\) at member 'bomb/00002.bin'"):
        dsreg.fetch("capped", quiet=True)
    assert_nothing_prepared(dsreg_cache, "capped")
    assert dsreg.fetch("plain", quiet=True).manifest["splits"]["train"]["examples"] == 4


# -- bombs: peak memory measured in a fresh process -------------------------------------------------------
PROBE = textwrap.dedent("""
    import json, sys
    from dsreg import archive
    from dsreg.errors import ArchiveError

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    baseline = rss("VmRSS:")
    with open("/proc/self/clear_refs", "w") as fh:  # start the peak (VmHWM) from here
        fh.write("5")
    read, message = 0, None
    try:
        for _, data in archive.members(sys.argv[1]):
            read += len(data)
    except ArchiveError as exc:
        message = str(exc)
    print(json.dumps({"read": read, "message": message, "peak": rss("VmHWM:") - baseline}))
""")


def measure(path: Path, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DSREG_CONFIG": os.devnull, **env},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from Linux's /proc")
@pytest.mark.parametrize("make", [hostile.tar_bomb, hostile.zip_bomb], ids=["tar.gz", "zip"])
def test_a_200mb_bomb_is_refused_in_little_memory(tmp_path: Path, make) -> None:
    many = make(tmp_path, 200 << 20, 50)  # 50 members of 4 MiB: refused by the total
    result = measure(many, DSREG_MAX_EXPANDED="64MiB")
    assert re.fullmatch(
        rf"{re.escape(many.name)} expands to more than 64MiB \(DSREG_MAX_EXPANDED\) at member 'bomb/0001[56].bin': "
        r"refused as an archive bomb; if the archive is genuine, set DSREG_MAX_EXPANDED=256MiB \(or more\) and "
        r"fetch again",
        result["message"],
    )
    assert result["read"] in (60 << 20, 64 << 20)  # tar headers count too: the tar stops a member earlier
    assert result["peak"] < 48 << 20, result  # a few members' worth, never the 200 MB

    one = make(tmp_path, 200 << 20, 1)  # one member of 200 MB: refused from its declared size, unread
    result = measure(one, DSREG_MAX_MEMBER="64MiB")
    assert "member 'bomb/00000.bin' expands to 200MiB, over the 64MiB one member may hold" in result["message"]
    assert result["read"] == 0 and result["peak"] < 16 << 20, result


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from Linux's /proc")
def test_reading_a_whole_archive_holds_one_member_at_a_time(tmp_path: Path) -> None:
    path = hostile.tar_bomb(tmp_path, 200 << 20, 25)  # 8 MiB members, all allowed
    result = measure(path)
    assert result["message"] is None and result["read"] == 200 << 20
    assert result["peak"] < 40 << 20, result  # about two members (the decompressor's copy and ours) and a buffer


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from Linux's /proc")
def test_tarfiles_headers_do_not_pile_up_on_the_fallback_path(tmp_path: Path) -> None:
    import io
    import tarfile

    # A pax global header sends the archive to tarfile, which keeps every header it reads (about
    # 600 bytes each, 12 MiB here): millions of empty members would fill memory.
    path = tmp_path / "global.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}) as tar:
        for i in range(20_000):
            tar.addfile(tarfile.TarInfo(f"e/{i}"), io.BytesIO())
    result = measure(path)
    assert result["message"] is None and result["peak"] < 8 << 20, result
