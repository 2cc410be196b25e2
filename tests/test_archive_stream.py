"""dsreg.fetching.archive.members reads tars with its direct header reader: same members, same refusals as tarfile."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

import dsreg
from dsreg.fetching.archive import members, members_in_order

LONG = "deep/" + "d" * 120 + "/" + "f" * 80 + ".png"  # > 100 characters: GNU long name, ustar prefix or pax path
NAMES = ["top.txt", "empty.bin", LONG, "big.bin", "ünïcode/ファイル.txt"]


def build(path: Path, fmt: int, mode: str, extra=(), names=NAMES) -> Path:
    """Write an archive holding a folder, ``names`` (one empty, one 1 MB) and ``extra`` TarInfo members."""
    with tarfile.open(path, mode, format=fmt) as tar:
        folder = tarfile.TarInfo("deep")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name in names:
            data = b"" if name == "empty.bin" else (b"x" * 1_000_003 if name == "big.bin" else name.encode() * 3)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"") if info.isreg() else None)
    return path


def reference(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_the_direct_reader_gives_what_tarfile_gives_without_tarfile(tmp_path: Path, monkeypatch, fmt: int, mode: str) -> None:
    # ustar holds only ASCII names, and long ones through its 155-character prefix field.
    names = NAMES if fmt != tarfile.USTAR_FORMAT else [n for n in NAMES if n.isascii()]
    path = build(tmp_path / "a.tar", fmt, mode, names=names)
    want = reference(path)
    assert [n for n, _ in want] == names
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("tarfile was used"))
    assert list(members(path)) == want


def test_a_pax_global_header_hands_over_to_tarfile_without_repeating_members(tmp_path: Path) -> None:
    path = tmp_path / "g.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}) as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"f{i}.txt")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"%d" % i))
    assert list(members(path)) == [("f0.txt", b"0"), ("f1.txt", b"1"), ("f2.txt", b"2")]


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        (tarfile.SYMTYPE, "is a link"),
        (tarfile.LNKTYPE, "is a link"),
        (tarfile.FIFOTYPE, "is a device or special"),
        (tarfile.CHRTYPE, "is a device or special"),
    ],
)
def test_links_and_devices_are_refused_by_name(tmp_path: Path, kind: bytes, says: str) -> None:
    info = tarfile.TarInfo("zz/odd")
    info.type = kind
    info.linkname = "/etc/passwd"
    path = build(tmp_path / "a.tar.gz", tarfile.GNU_FORMAT, "w:gz", [info])
    with pytest.raises(dsreg.ArchiveError, match=f"member 'zz/odd' {says}"):
        list(members(path))


@pytest.mark.parametrize(("name", "says"), [("../up.txt", "climbs out"), ("/abs.txt", "absolute path")])
def test_escaping_paths_are_refused(tmp_path: Path, name: str, says: str) -> None:
    info = tarfile.TarInfo(name)
    path = build(tmp_path / "a.tar.gz", tarfile.GNU_FORMAT, "w:gz", [info])
    with pytest.raises(dsreg.ArchiveError, match=says):
        list(members(path))


def test_truncated_and_damaged_archives_are_archive_errors(tmp_path: Path) -> None:
    path = build(tmp_path / "a.tar", tarfile.GNU_FORMAT, "w")
    data = path.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(dsreg.ArchiveError, match="cut short after 3 members"):
        list(members(cut))
    bad = bytearray(data)
    bad[512 * 3 + 10] ^= 0xFF  # inside a later header: its checksum no longer matches
    damaged = tmp_path / "bad.tar"
    damaged.write_bytes(bytes(bad))
    with pytest.raises(dsreg.ArchiveError, match=r"is not a readable tar archive after 1 member \(bad checksum"):
        list(members(damaged))


def test_an_old_gnu_header_has_no_name_prefix(tmp_path: Path) -> None:
    # GNU tar keeps atime and ctime in bytes 345-368 of its headers; tarfile reads them as a ustar
    # prefix and would name this member "14620163221/a.txt". The direct reader reads as GNU tar does.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    raw = bytearray(buf.getvalue())
    assert raw[257:265] == b"ustar  \0"
    raw[345:357] = b"14620163221\0"  # an access time, as GNU tar --incremental writes it
    raw[148:156] = b" " * 8
    raw[148:155] = b"%06o\0" % sum(raw[:512])
    path = tmp_path / "incremental.tar"
    path.write_bytes(bytes(raw))
    assert list(members(path)) == [("a.txt", b"x")]


# -- members_in_order: a required order from one pass, with a bounded buffer ---------------------
def labelled_last(tmp_path: Path, fmt: str = "tar.gz") -> Path:
    """An archive whose labels file comes after the images it labels, as many published archives have it."""
    from dsreg.testing import pack

    tree = {f"data/img{i}.png": b"%d" % i * 100 for i in range(4)}
    tree["data/labels.csv"] = b"img0,a\nimg1,b\n"
    path = tmp_path / f"labelled.{fmt}"
    path.write_bytes(pack(tree, fmt))
    return path


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_members_in_order_yields_the_named_members_first_then_the_rest_in_archive_order(tmp_path: Path, fmt: str) -> None:
    path = labelled_last(tmp_path, fmt)
    assert [n for n, _ in members(path)][-1] == "data/labels.csv"
    got = list(members_in_order(path, ["data/labels.csv"], rest=True))
    assert [n for n, _ in got] == ["data/labels.csv", *(f"data/img{i}.png" for i in range(4))]
    assert dict(got) == dict(members(path))


def test_members_in_order_follows_the_order_skips_the_others_and_maps_names_by_key(tmp_path: Path) -> None:
    path = labelled_last(tmp_path)
    got = list(members_in_order(path, ["img3.png", "img0.png", "labels.csv"], key=lambda p: p.rsplit("/", 1)[-1]))
    assert [n for n, _ in got] == ["data/img3.png", "data/img0.png", "data/labels.csv"]
    assert got[0][1] == b"3" * 100


def test_members_in_order_refuses_to_hold_more_than_max_buffered(tmp_path: Path) -> None:
    path = labelled_last(tmp_path)
    # Waiting for the labels means holding the four 100-byte images: 400 bytes.
    assert len(list(members_in_order(path, ["data/labels.csv"], rest=True, max_buffered=400))) == 5
    with pytest.raises(dsreg.ArchiveError) as err:
        list(members_in_order(path, ["data/labels.csv"], rest=True, max_buffered=399))
    assert str(err.value) == (
        "labelled.tar.gz: members read before their turn, up to 'data/img3.png', take more than the 399B "
        "members_in_order may hold (max_buffered) while it waits for 'data/labels.csv'; pass max_buffered='2KiB' "
        "(or more), or read the archive in its own order with members()"
    )
    # Skipped members are not held: without rest= the images cost nothing.
    assert [n for n, _ in members_in_order(path, ["data/labels.csv"], max_buffered=1)] == ["data/labels.csv"]


def test_members_in_order_names_missing_and_repeated_members(tmp_path: Path) -> None:
    path = labelled_last(tmp_path)
    with pytest.raises(dsreg.ArchiveError, match=r"^labelled.tar.gz has no member 'data/nope', which members_in_order was asked for$"):
        list(members_in_order(path, ["data/img1.png", "data/nope"]))
    with pytest.raises(dsreg.ArchiveError, match=r"two members are 'img' \(the second is 'data/img1.png'\)"):
        list(members_in_order(path, ["img"], key=lambda p: p.rsplit("/", 1)[-1][:3]))
    with pytest.raises(ValueError, match="order names a member twice"):
        list(members_in_order(path, ["a", "a"]))
