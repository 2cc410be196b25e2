"""What the cache knows about each downloaded file of a dataset: one ``FileRecord`` per file.

A dataset's records live in ``datasets/<dataset>/files.json`` as ``{file name: record}``; a record
names the blob (``downloads/<sha256>``) holding the file's bytes, how those bytes were verified
(``Status``) and the source they came from. The JSON is the format of dsreg 0.1, key for key, so a
cache written before these types existed reads the same (``FileRecord.from_json``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Status", "FileRecord"]


class Status(str, enum.Enum):
    """How a file's bytes were verified; the value is what ``files.json`` stores."""

    #: They match the checksum the Builder publishes.
    VERIFIED = "verified"
    #: No published checksum, and the dataset has not yet prepared from them: they become the pin
    #: only once it has, so an error page or a truncated file is never pinned.
    CANDIDATE = "candidate"
    #: No published checksum; the dataset prepared from them, so their sha256 is required of every
    #: later download (until ``--force`` replaces it).
    PINNED = "pinned"
    #: Not checked at all: the user's ``--no-verify`` choice, which stands until they fetch again.
    UNVERIFIED = "unverified"

    def __str__(self) -> str:  # the stored word, not "Status.PINNED", wherever one is printed
        return self.value


@dataclass(frozen=True)
class FileRecord:
    """One downloaded file of one dataset: which blob holds it, how it was verified, where it came from."""

    #: The sha256 of the bytes, which names their blob in the cache (``Cache.blob_path``).
    sha256: str
    size: int
    status: Status
    #: Where the bytes came from: the URL or path that delivered them, or ``"cache"`` when they
    #: were already there as another dataset's blob.
    source: str
    md5: str | None = None
    #: When the bytes arrived (UTC, ``YYYY-MM-DDTHH:MM:SSZ``); None for a blob found in the cache.
    fetched: str | None = None
    #: When the pin was made (for a PINNED record).
    pinned: str | None = None
    #: The sha256 of the pin a ``--force`` download replaces once the dataset prepares (a CANDIDATE).
    replaces: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileRecord:
        """Read a record as ``files.json`` stores it (keys this version does not know are ignored).

        Raises KeyError, TypeError or ValueError when a required key is missing or a status unknown.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        return cls(**{**values, "status": Status(values["status"])})

    def to_json(self) -> dict[str, Any]:
        """Return the record as ``files.json`` stores it: optional keys only when they hold a value."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["status"] = self.status.value
        return {key: value for key, value in data.items() if value is not None}

    def describe_status(self) -> str:
        """Return how the bytes were verified, in the words ``dsreg info`` prints."""
        return {
            Status.VERIFIED: "verified",
            Status.PINNED: f"pinned sha256 {self.sha256} on {self.pinned or '?'}",
            Status.UNVERIFIED: "NOT VERIFIED (fetched with --no-verify)",
            Status.CANDIDATE: "not pinned yet (pinned once the dataset prepares from it)",
        }[self.status]

    def as_pinned(self) -> FileRecord:
        """Return this CANDIDATE made the pin (its dataset prepared from these bytes), dated when they arrived."""
        return dataclasses.replace(self, status=Status.PINNED, pinned=self.fetched, replaces=None)
