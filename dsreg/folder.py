"""A folder dataset: your own files, one folder per class, at any URL, split by one rule.

``FolderBuilder`` is the base of ``imagefolder``, ``audiofolder`` and ``textclass``'s folder mode. It
does, once for all of them, what every folder-style dataset needs:

- ``url`` (config) names the data: a local folder, a ``.zip``/``.tar(.gz)`` archive, ``http(s)://``
  or ``s3://`` (any fsspec URL; ``dsreg.fetching.userdata`` reads it). ``get_files`` and
  ``fingerprint`` hand remote archives to the core to fetch and pin, and fingerprint local input.
- the layout ``[top/][train|test|validation/]class/.../file``: class names are the sorted class
  folder names, labels their indices (``get_features`` fills the ``label`` column's names).
- the splits (``get_splits``): split folders when the tree has them, else ``holdout``/``seed``
  (config), the one holdout rule below.
- one cached scan of the data (``scan``): the layout, which file goes to which split and, if the
  subclass probes files (``probe_file``), what it learnt from each, in one pass over the data.

A subclass says which files are data and what an example is::

    class SoundFolder(FolderBuilder):
        name = "soundfolder"
        task = "audio-classification"
        features = {"audio": dsreg.Binary(), "label": dsreg.ClassLabel()}
        extensions = (".wav", ".flac")

        def file_record(self, path, data, label):
            return {"audio": data, "label": label}   # or a record for a picklable ``decode``

The holdout rule (when the tree has no split folders): ``holdout`` is the fraction of each class
that goes to ``test`` (``0.2``), or ``{split: fraction}`` (``{"validation": 0.1, "test": 0.1}``);
``train`` keeps the rest. Within each class the paths are sorted, then shuffled by a generator
seeded with ``seed`` and the class name (``dsreg.fetching.userdata.stratified_split``), and each
held-out split takes ``round(n * fraction)`` of them (at least one when the class has two or more
files, never the class's last). So the split depends only on the set of files, not on the order a
filesystem or archive lists them, nor on the archive's top folder. A split is listed only when its
fraction is above 0 (``holdout=0`` gives ``train`` alone), in the order train, validation, test,
then other names sorted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .builder import Builder, File
from .errors import ConfigError
from .features import ClassLabel, Feature
from .fetching import userdata

__all__ = ["FolderBuilder", "FolderScan", "holdout_fractions", "holdout_splits"]

_SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HOLDOUT_HINT = 'give a fraction for test (-c holdout=0.2) or -c \'holdout={"validation": 0.1, "test": 0.1}\''


def holdout_fractions(holdout: Any) -> dict[str, float]:
    """Return ``holdout`` as ``{held-out split: fraction}``; ConfigError saying what is wrong otherwise."""
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float, Mapping)):
        raise ConfigError(f"holdout {holdout!r} is not a fraction; {_HOLDOUT_HINT}")
    raw = {"test": holdout} if isinstance(holdout, (int, float)) else dict(holdout)
    fractions: dict[str, float] = {}
    for split, fraction in raw.items():
        if split == "train":
            raise ConfigError(f"holdout {holdout!r} names train; it names the held-out splits and train gets the rest")
        if not isinstance(split, str) or not _SPLIT_NAME.match(split):
            raise ConfigError(f"holdout split name {split!r} must be lower-case letters, digits and _")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
            raise ConfigError(f"holdout {holdout!r}: {split} must be a fraction from 0 to below 1; {_HOLDOUT_HINT}")
        fractions[split] = float(fraction)
    if sum(fractions.values()) >= 1:
        raise ConfigError(f"holdout {holdout!r} leaves nothing for train: the fractions must sum to less than 1")
    return fractions


def holdout_splits(holdout: Any) -> tuple[str, ...]:
    """Return the splits ``holdout`` makes: train, then each held-out split whose fraction is above 0."""
    held = {split for split, fraction in holdout_fractions(holdout).items() if fraction > 0}
    known = [s for s in ("validation", "test") if s in held]
    return ("train", *known, *sorted(held - set(known)))


@dataclass(eq=False)
class FolderScan:
    """What one look at the data found: where it is, its class layout and each file's split."""

    data: userdata.UserData
    layout: userdata.Layout
    #: ``{path: split}`` of every data file (split folders, or the holdout rule).
    assignment: dict[str, str]
    #: ``{path: probe_file's answer}`` for each data file it could read (empty when not probing).
    probes: dict[str, Any] = field(default_factory=dict)
    #: Data files ``probe_file`` could not read (decoding them will skip them with the reason).
    unreadable: list[str] = field(default_factory=list)


class FolderBuilder(Builder):
    """Base of a folder dataset: implement ``file_record`` (and set ``extensions``); the rest is here.

    Methods a subclass writes: ``file_record(path, data, label)``. It may also override
    ``file_extensions()`` (when the extensions are known only at run time), ``probe_file(path,
    data)`` (to learn something from every file before preparing, e.g. an image's size),
    ``get_features`` (columns found in the data) and ``generate`` (built on ``split_files``).
    """

    config: ClassVar[Mapping[str, Any]] = {"url": None, "holdout": 0.2, "seed": 0}
    features: ClassVar[Mapping[str, Feature]] = {"label": ClassLabel()}
    #: File name endings (any case, with the dot) that are data; other files are left out and noted.
    #: Empty: every file in a class folder is data.
    extensions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        holdout_fractions(self.params["holdout"])  # refuse a bad holdout before any work
        seed = self.params["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed {seed!r} must be a whole number")
        self._folder_scan: FolderScan | None = None
        self._folder_listing: userdata.Layout | None = None

    # -- what a subclass provides ---------------------------------------------------------------
    def file_record(self, path: str, data: bytes, label: int) -> Any:
        """Return what ``generate`` yields for one data file: an example, or a record for ``decode``."""
        raise NotImplementedError(f"{type(self).__name__} must implement file_record(path, data, label)")

    def file_extensions(self) -> tuple[str, ...]:
        """Return the file name endings that are data (default: ``extensions``)."""
        return tuple(self.extensions)

    def probe_file(self, path: str, data: bytes) -> Any:
        """Return what preparing needs to know of one file before decoding any (raise if unreadable).

        Override it only when needed: then the scan reads every data file once (else it lists names).
        """
        raise NotImplementedError

    # -- the data ---------------------------------------------------------------------------------
    def scan(self, files: Mapping[str, Path]) -> FolderScan:
        """Return the scan of the data (made once per builder): layout, splits and probes."""
        if self._folder_scan is not None:
            return self._folder_scan
        user_data = userdata.UserData(self.params["url"], files)
        extensions = tuple(e.lower() for e in self.file_extensions())
        probes: dict[str, Any] = {}
        unreadable: list[str] = []
        if type(self).probe_file is FolderBuilder.probe_file:
            names = user_data.names()
        else:
            names = []

            def read(path: str) -> bool:
                names.append(path)
                return path.lower().endswith(extensions)

            for path, data in user_data.walk(select=read):  # one pass: names and probes together
                try:
                    probes[path] = self.probe_file(path, data)
                except Exception:  # an unreadable file is skipped (and listed) when decoding
                    unreadable.append(path)
        layout = userdata.class_layout(names, extensions=extensions)
        assignment = layout.assign(holdout=holdout_fractions(self.params["holdout"]), seed=self.params["seed"])
        self._folder_scan = FolderScan(user_data, layout, assignment, probes, unreadable)
        return self._folder_scan

    def _known_layout(self) -> userdata.Layout | None:
        """Return the layout without fetching: the scan's, or a local url's listing; None if remote."""
        if self._folder_scan is not None:
            return self._folder_scan.layout
        url = self.params["url"]
        if self._folder_listing is None and url and not userdata.is_remote(url):
            names = userdata.UserData(url).names()
            self._folder_listing = userdata.class_layout(names, extensions=[e.lower() for e in self.file_extensions()])
        return self._folder_listing

    def classes(self, files: Mapping[str, Path] | None = None) -> tuple[str, ...]:
        """Return the class names: the sorted class folders (``()`` while remote data is not fetched)."""
        if files is not None:
            return self.scan(files).layout.classes
        layout = self._known_layout()
        return layout.classes if layout is not None else ()

    def split_files(self, split: str, files: Mapping[str, Path]) -> Iterator[tuple[str, bytes, int]]:
        """Yield ``(path, bytes, label)`` of every data file of ``split``, read once as a stream."""
        scan = self.scan(files)
        for path, data in scan.data.walk(select=lambda p: scan.assignment.get(p) == split):
            yield path, data, scan.layout.label(path)

    # -- the Builder contract -------------------------------------------------------------------
    def get_files(self) -> tuple[File, ...]:
        return userdata.files_for(self.params["url"])

    def fingerprint(self) -> str | None:
        return userdata.fingerprint(self.params["url"])

    def get_splits(self) -> tuple[str, ...]:
        layout = self._known_layout()
        if layout is not None and layout.splits:
            return layout.splits
        return holdout_splits(self.params["holdout"])

    def get_features(self, files: Mapping[str, Path] | None = None) -> dict[str, Feature]:
        features = dict(super().get_features(files))
        features["label"] = ClassLabel(self.classes(files))
        return features

    def generate(self, split: str, files: Mapping[str, Path], **config: Any) -> Iterator[tuple[str, Any]]:
        self.note_scan(self.scan(files))
        for path, data, label in self.split_files(split, files):
            yield path, self.file_record(path, data, label)

    def note_scan(self, scan: FolderScan) -> None:
        """Record in the manifest what the scan found: classes, where the splits came from, files left out."""
        self.note("classes", len(scan.layout.classes))
        self.note(
            "splits_from",
            "folders" if scan.layout.splits else f"holdout {self.params['holdout']} (class-stratified, seed {self.params['seed']})",
        )
        if scan.layout.ignored:
            self.note("ignored_files", {"count": len(scan.layout.ignored), "first": scan.layout.ignored[:5]})
