"""A user's own data at any fsspec URL: a local folder, a .zip or .tar(.gz) archive, a single file,
``http(s)://`` or ``s3://`` (any protocol fsspec knows), read the same way by every plugin.

(Named ``dsreg.sources`` / ``dsreg.fetching.sources`` and ``Source`` in dsreg 0.1; those names still
work. "Source" now means only where a file's bytes come from: see the glossary in ``dsreg.fetching``.)

How a config ``url`` becomes input (a user's URL has no published checksum):

    kind      what the URL names                          how the core gets it
    archive   a name ending .zip .tar .tar.gz .tgz         local: read in place, fingerprinted
              .tar.bz2 .tbz2 .tar.xz .txz                  remote: a File pinned on first download
    file      any other file (e.g. data.csv, data.jsonl)   local: read in place, fingerprinted
                                                           remote: a File pinned on first download
    folder    a local folder, or a remote URL ending '/'   read in place through fsspec, fingerprinted
              (or one fsspec says is a folder; not http)   (names, sizes and mtimes/ETags)

Remote files are downloaded by the core (mirrors, resume, a sha256 pinned the first time; later
downloads are verified against the pin). Their File name carries a hash of the URL, so two configs
with different URLs never share a record. Local input and remote folders are not copied:
``fingerprint`` digests their listing into the Builder's ``config_id``, so adding, removing or
rewriting a file prepares again (a rewrite that keeps size and mtime is not noticed; ``dsreg fetch
--force`` redoes it). http(s) cannot list folders: point it at an archive or a single file.

Use in a Builder whose config has ``url`` (see dsreg-image's ``imagefolder`` for a complete one):

    from dsreg.fetching import userdata

    class MyFolder(dsreg.Builder):
        config = {"url": None, "holdout": 0.2, "seed": 0}

        def get_files(self):
            return userdata.files_for(self.params["url"])          # () or (pinned File,)

        def fingerprint(self):
            return userdata.fingerprint(self.params["url"])        # None for pinned remote files

        def generate(self, split, files, **config):
            p = self.params
            data = userdata.UserData(p["url"], files)
            layout = userdata.class_layout(data.names(), extensions=(".png", ".jpg"))
            assign = layout.assign(holdout=p["holdout"], seed=p["seed"])   # {path: split}
            for path, raw in data.walk(select=assign.__contains__):
                if assign[path] == split:
                    yield path, {"data": raw, "label": layout.label(path)}

``UserData.walk()`` yields ``(relative path, bytes)`` of every file (folders in sorted order; archives
in their stored order, read once as a stream); ``UserData.names()`` lists the paths (cheap for folders
and zips; a tar is streamed once); ``UserData.open()`` opens a single file (or ``local_path()``
for readers that want a path). ``class_layout`` finds class folders and ``train/``, ``test/``,
``validation/`` (also ``val``, ``valid``, ``dev``) sub-folders under any single top folder;
``stratified_split`` is the seeded, class-stratified holdout used when there are no split folders.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import random
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..builder import File
from ..errors import ConfigError

__all__ = [
    "ARCHIVE_SUFFIXES",
    "SPLIT_FOLDERS",
    "UserData",
    "Source",
    "Layout",
    "kind",
    "is_remote",
    "files_for",
    "fingerprint",
    "class_layout",
    "stratified_split",
]

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: Sub-folder names read as splits (case-insensitive) → the split they become.
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
}
#: Names that are never data: OS metadata and hidden files.
_NOT_DATA = re.compile(r"(^|/)(__MACOSX|\.[^/]*|Thumbs\.db|desktop\.ini)(/|$)")


def _required_url(url: str | None) -> str:
    if not url:
        raise ConfigError("this dataset needs your data: pass -c url=PATH_OR_URL (a folder, .zip, .tar.gz, http(s):// or s3://)")
    return str(url)


def is_remote(url: str) -> bool:
    """True when ``url`` names something fsspec reads over a protocol other than the local disk."""
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    return protocol not in {"file", "local"}


def _local_path(url: str) -> Path:
    return Path(url.split("://", 1)[1] if url.lower().startswith(("file://", "local://")) else url).expanduser()


def _basename(url: str) -> str:
    return posixpath.basename(url.split("?", 1)[0].split("#", 1)[0].rstrip("/"))


def kind(url: str) -> str:
    """Return ``archive``, ``file`` or ``folder`` for ``url`` (see the module docstring for the rules)."""
    url = _required_url(url)
    if _basename(url).lower().endswith(ARCHIVE_SUFFIXES):
        return "archive"
    if not is_remote(url):
        path = _local_path(url)
        if path.is_dir():
            return "folder"
        if path.is_file():
            return "file"
        raise ConfigError(f"url {url} does not exist; pass an existing folder, archive or file")
    if url.endswith("/"):
        return "folder"
    if url.split("://", 1)[0].lower() in {"http", "https"}:
        return "file"
    fs, where = _remote_fs(url)
    return "folder" if fs.isdir(where) else "file"


def _remote_fs(url: str) -> tuple[Any, str]:
    """Return ``(filesystem, path)`` of a remote ``url`` read in place, after DSREG_NETWORK allows it."""
    from . import config, objectstore

    config.check_network(url)
    return objectstore.url_to_fs(url)


def _file_name_for(url: str) -> str:
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", _basename(url)) or "data"
    return f"{digest}-{base}"


def files_for(url: str | None) -> tuple[File, ...]:
    """Return the remote File a Builder's ``get_files()`` needs for ``url``: one pinned File, or ``()``.

    ``None`` (no url configured yet, e.g. ``dsreg list``) gives ``()`` so listing stays cheap.
    """
    if not url or not is_remote(url) or kind(url) == "folder":
        return ()
    return (File(_file_name_for(url), urls=(url,), pin_on_first_download=True),)


def fingerprint(url: str | None) -> str | None:
    """Return a digest of what is at ``url`` that the core does not pin (local input, remote folders)."""
    if not url:
        return None
    what = kind(url)
    entries: list[tuple[str, int, str]] = []
    if not is_remote(url):
        root = _local_path(url)
        if what == "folder":
            for path, _dirs, names in os.walk(root):
                for name in names:
                    st = os.stat(os.path.join(path, name))
                    entries.append((os.path.relpath(os.path.join(path, name), root), st.st_size, str(st.st_mtime_ns)))
        else:
            st = root.stat()
            entries.append((root.name, st.st_size, str(st.st_mtime_ns)))
    elif what == "folder":
        fs, path = _remote_fs(url)
        for name, meta in fs.find(path, detail=True).items():
            stamp = next((str(meta[k]) for k in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created") if meta.get(k)), "")
            entries.append((name, int(meta.get("size") or 0), stamp))
    else:
        return None  # a remote file is pinned by the core on first download
    listing = "\n".join(f"{n}\t{s}\t{m}" for n, s, m in sorted(entries))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


class UserData:
    """The user's data at ``url``, given the verified local ``files`` a Builder received (for remote files)."""

    def __init__(self, url: str | None, files: Mapping[str, Path] | None = None) -> None:
        self.url = _required_url(url)
        self.kind = kind(self.url)
        self.remote = is_remote(self.url)
        self._files = dict(files or {})

    def local_path(self) -> Path:
        """Return a local path of an archive or single file (the cached download for a remote one)."""
        if self.kind == "folder":
            raise ConfigError(f"{self.url} is a folder, not a file")
        if not self.remote:
            return _local_path(self.url)
        name = _file_name_for(self.url)
        if name not in self._files:
            raise ConfigError(f"{self.url} has not been fetched; return userdata.files_for(url) from get_files()")
        return Path(self._files[name])

    def open(self) -> IO[bytes]:
        """Open the single file at ``url`` for reading (binary)."""
        return open(self.local_path(), "rb")

    def _folder(self) -> tuple[Any, str]:
        import fsspec

        if not self.remote:
            return fsspec.filesystem("file"), str(_local_path(self.url).resolve())
        fs, path = _remote_fs(self.url)
        return fs, path.rstrip("/")

    def _folder_names(self) -> list[tuple[str, str]]:
        fs, root = self._folder()
        out = []
        for full in fs.find(root):
            rel = posixpath.relpath(full, root) if not self.remote else full[len(root) :].lstrip("/")
            rel = rel.replace(os.sep, "/")
            if not _NOT_DATA.search(rel):
                out.append((rel, full))
        return sorted(out)

    def names(self) -> list[str]:
        """Return the relative path of every data file (hidden files and OS metadata left out)."""
        if self.kind == "folder":
            return [rel for rel, _ in self._folder_names()]
        if self.kind == "file":
            return [_basename(self.url)]
        path = self.local_path()
        from . import archive

        if archive.detect(path) == "zip":
            import zipfile

            with zipfile.ZipFile(path) as zf:
                names = [archive.check_member_name(i.filename, path.name) for i in zf.infolist() if not i.is_dir()]
            return [n for n in names if n and not _NOT_DATA.search(n)]
        return [name for name, _ in archive.members(path, label=_basename(self.url)) if not _NOT_DATA.search(name)]

    def walk(self, select: Callable[[str], bool] | None = None) -> Iterator[tuple[str, bytes]]:
        """Yield ``(relative path, bytes)`` of every data file; ``select(path)`` False skips reading it."""
        if self.kind == "folder":
            fs, _ = self._folder()
            for rel, full in self._folder_names():
                if select is None or select(rel):
                    yield rel, fs.cat_file(full)
            return
        if self.kind == "file":
            rel = _basename(self.url)
            if select is None or select(rel):
                yield rel, self.local_path().read_bytes()
            return
        from . import archive

        for name, data in archive.members(self.local_path(), label=_basename(self.url)):
            if not _NOT_DATA.search(name) and (select is None or select(name)):
                yield name, data


#: The name of dsreg 0.1, kept for plugins written against it.
Source = UserData


# -- class folders and splits -------------------------------------------------------------------
@dataclass
class Layout:
    """Where the classes (and split folders, if any) are in a list of relative paths."""

    #: Sorted class names; the label of a path is the index of its class here.
    classes: tuple[str, ...]
    #: ``{path: (split or None, class name)}`` for every path that is a labelled data file.
    entries: dict[str, tuple[str | None, str]]
    #: The splits named by sub-folders (e.g. ``("train", "test")``), or ``()`` when there are none.
    splits: tuple[str, ...] = ()
    #: The common top folder(s) stripped before looking for classes (e.g. ``"shapes"``).
    prefix: str = ""
    #: Paths that are not inside a class folder (e.g. a README at the top), so not data.
    ignored: list[str] = field(default_factory=list)

    def label(self, path: str) -> int:
        """Return the class index of ``path``."""
        return self.classes.index(self.entries[path][1])

    def assign(self, holdout: float | Mapping[str, float] = 0.2, seed: int = 0) -> dict[str, str]:
        """Return ``{path: split}``: the split folders when present, else a seeded stratified holdout."""
        if self.splits:
            return {path: split for path, (split, _) in self.entries.items() if split is not None}
        paths = list(self.entries)
        return stratified_split(paths, [self.entries[p][1] for p in paths], holdout, seed)


def _split_of(folder: str) -> str | None:
    return SPLIT_FOLDERS.get(folder.lower())


def class_layout(paths: Iterable[str], extensions: Sequence[str] | None = None) -> Layout:
    """Find class folders in relative ``paths``: ``[top/][split/]class/.../file``.

    A single top folder shared by every path is stripped (an archive made from a folder), unless
    it is a split name. When every first folder is a split name (``train``, ``test``,
    ``validation``, ``val``, ``valid``, ``dev``, ``training``, ``testing``), the next folder is the
    class; else the first folder is. Only ``extensions`` (lower-case, with the dot) count as data.
    """
    exts = tuple(e.lower() for e in extensions) if extensions else None
    kept = sorted(p for p in paths if not _NOT_DATA.search(p))
    ignored = [p for p in kept if exts is not None and not p.lower().endswith(exts)]
    data = [p.split("/") for p in kept if exts is None or p.lower().endswith(exts)]
    prefix: list[str] = []
    while data and all(len(parts) >= 3 for parts in data) and len({parts[0] for parts in data}) == 1 and _split_of(data[0][0]) is None:
        prefix.append(data[0][0])
        data = [parts[1:] for parts in data]
    joined = "/".join(prefix)

    def full(parts: list[str]) -> str:
        return "/".join([*prefix, *parts])

    by_split = bool(data) and all(len(parts) >= 3 and _split_of(parts[0]) for parts in data)
    entries: dict[str, tuple[str | None, str]] = {}
    for parts in data:
        if by_split:
            entries[full(parts)] = (_split_of(parts[0]), parts[1])
        elif len(parts) >= 2:
            entries[full(parts)] = (None, parts[0])
        else:
            ignored.append(full(parts))
    if not entries:
        raise ConfigError(
            "found no class folders: put each class's files in a folder named for the class "
            "(optionally under train/ and test/), e.g. cat/1.png, dog/2.png"
        )
    classes = tuple(sorted({cls for _, cls in entries.values()}))
    order = ("train", "validation", "test")
    splits = tuple(s for s in order if any(sp == s for sp, _ in entries.values())) if by_split else ()
    return Layout(classes, entries, splits, joined, sorted(ignored))


def stratified_split(
    keys: Sequence[Hashable],
    labels: Sequence[Hashable],
    holdout: float | Mapping[str, float] = 0.2,
    seed: int = 0,
) -> dict[Any, str]:
    """Return ``{key: split}``: a seeded, class-stratified split of ``keys``.

    ``holdout`` is the fraction for ``test`` (a float) or ``{split: fraction}`` (e.g. ``{"test":
    0.1, "validation": 0.1}``); the rest is ``train``. Within each class the keys are sorted, then
    shuffled with a generator seeded by ``seed`` and the class, so the split depends only on the
    set of keys, not on their order. Each class gives ``round(n * fraction)`` keys to each held-out
    split, at least one when the class has two or more keys and the fraction is positive, and
    always keeps at least one key for ``train``.
    """
    fractions = {"test": float(holdout)} if isinstance(holdout, (int, float)) else {k: float(v) for k, v in holdout.items()}
    if any(f < 0 for f in fractions.values()) or sum(fractions.values()) >= 1:
        raise ConfigError(f"holdout {holdout} must be fractions >= 0 that sum to less than 1 (e.g. 0.2)")
    if "train" in fractions:
        raise ConfigError("holdout names the held-out splits; 'train' gets the rest")
    if len(keys) != len(labels):
        raise ValueError(f"{len(keys)} keys but {len(labels)} labels")
    groups: dict[Hashable, list[Hashable]] = {}
    for key, label in zip(keys, labels):
        groups.setdefault(label, []).append(key)
    out: dict[Any, str] = {}
    for label in sorted(groups, key=str):
        members = sorted(groups[label], key=str)
        random.Random(f"{seed}:{label}").shuffle(members)
        n, start = len(members), 0
        for split, fraction in fractions.items():
            take = round(n * fraction)
            if fraction > 0 and n >= 2:
                take = max(1, take)
            take = min(take, n - 1 - start) if n - start > 0 else 0
            for key in members[start : start + max(take, 0)]:
                out[key] = split
            start += max(take, 0)
        for key in members[start:]:
            out[key] = "train"
    return out
