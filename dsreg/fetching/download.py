"""Download: get each remote file of a dataset into the cache as a verified blob, whatever the network does.

Downloading is the first half of a fetch (``dsreg.fetch`` downloads, then prepares); see the
glossary in ``dsreg.fetching``. A ``Downloader`` does it for one dataset.

For each file, in order: a verified blob already in the cache; else its sources, each tried in
turn: ``--from`` (a file or folder the user has) alone when given, else the user's mirrors
(``--mirror``, DSREG_MIRRORS, the config file) and then the Builder's published URLs. Bytes stream
into a ``.part`` file, hashed as they arrive; the file is renamed into its blob,
``downloads/<sha256>``, only after its size and hash match, and its FileRecord (``Status``) says
how it was verified. Bytes that do not match are kept aside under ``downloads/rejected``.

http(s) is spoken here directly (``http.client``: one ``recv`` per read, so every byte that arrived
before a cut is kept, and each status and header is seen as sent); every other scheme goes through
fsspec (``objectstore.url_to_fs``: ``s3://`` through s3fs, the optional extra ``dsreg[s3]``), where a
resume opens the file and seeks to the end of the ``.part`` (a ranged GET on S3). Every failed attempt ends in one of three decisions (``Decision``), printed as one line on stderr:

    RETRY    it may pass: HTTP 5xx and 429 (after Retry-After, up to MAX_WAIT), a stall in the body
             (no byte for DSREG_TIMEOUT seconds), a dropped connection or a short body. The same URL
             is tried again after a backoff (DSREG_BACKOFF, doubled each time), resuming the .part,
             up to DSREG_RETRIES attempts.
    RESTART  the .part cannot be resumed here (wrong Content-Range, HTTP 416): it is discarded and
             the same URL is tried again at once from byte 0 (this counts as an attempt).
    NEXT     this URL will not deliver: 404/410 and other 4xx, DNS failure, refused connection, TLS
             error, no connection within the connect timeout, no response within DSREG_TIMEOUT, an
             HTML page instead of the file, a Retry-After over MAX_WAIT. The next source is tried at
             once; the .part is kept and resumed there.

So a dead mirror costs at most the connect timeout plus DSREG_TIMEOUT (one attempt), and any URL at
most DSREG_RETRIES × (connect timeout + DSREG_TIMEOUT + its transfer) plus the waits between
attempts, each at most MAX_WAIT; docs/cache.md states the bound with the defaults.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import errno
import hashlib
import http.client
import os
import socket
import ssl
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from ..builder import File
from ..errors import CacheError, ChecksumError, DsregError, FetchError, OfflineError
from . import config, objectstore
from .cache import Cache
from .records import FileRecord, Status

__all__ = ["Downloader", "Fetcher", "Rerun", "Decision", "Failure", "open_http", "status_failure", "mirror_url", "MAX_WAIT"]

CHUNK = 1 << 20
#: The longest wait between two attempts at one URL, in seconds: a Retry-After above it sends the
#: fetch to the next mirror at once, and the doubling backoff stops growing there.
MAX_WAIT = 60.0
MAX_REDIRECTS = 10
_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class Rerun:
    """The fetch the user asked for, to word advice as the call or command that repeats it with one change.

    Advice that drops the user's config or mirrors would not work when followed literally.
    """

    name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    mirrors: Sequence[str] = ()
    from_path: str | None = None
    verify: bool = True
    cache_dir: str | None = None  # Python only: the command line reads DSREG_CACHE
    splits: Sequence[str] = ()  # the splits asked for; empty: every split
    #: False where accepting unverified bytes is not an option (a fetch --locked requires the locked sha256).
    unverified_ok: bool = True

    def _settings(self, change: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {"mirrors": list(self.mirrors), "from_path": self.from_path, "verify": self.verify}
        return settings | change

    def python(self, **change: Any) -> str:
        """Return ``dsreg.fetch(...)`` with the user's arguments and ``change``."""
        settings = self._settings(change)
        args = [repr(self.name)]
        args += [f"split={list(self.splits)!r}"] if self.splits else []
        args += [f"mirrors={settings['mirrors']!r}"] if settings["mirrors"] else []
        args += [f"from_path={str(settings['from_path'])!r}"] if settings["from_path"] is not None else []
        args += [] if settings["verify"] else ["verify=False"]
        args += [f"cache_dir={self.cache_dir!r}"] if self.cache_dir is not None else []
        args += [f"{key}={value!r}" for key, value in self.config.items()]
        args += ["force=True"] if settings.get("force") else []
        return f"dsreg.fetch({', '.join(args)})"

    def cli(self, **change: Any) -> str:
        """Return ``dsreg fetch ...`` with the user's options and ``change`` (the same keywords as ``python``)."""
        import json
        import shlex

        settings = self._settings(change)
        words = ["dsreg", "fetch", self.name]
        for split in self.splits:
            words += ["--split", split]
        for key, value in self.config.items():
            # -c reads a value as JSON when it parses, so only a string that would not round-trip is quoted.
            plain = isinstance(value, str) and _json_or_none(value) in (None, value)
            words += ["-c", f"{key}={value if plain else json.dumps(value)}"]
        for mirror in settings["mirrors"]:
            words += ["--mirror", mirror]
        if settings["from_path"] is not None:
            words += ["--from", str(settings["from_path"])]
        words += [] if settings["verify"] else ["--no-verify"]
        words += ["--force"] if settings.get("force") else []
        return shlex.join(words)


def _json_or_none(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return None


def mirror_url(base: str, filename: str) -> str:
    """Return where ``filename`` lives under the mirror ``base`` (a URL or folder)."""
    if "://" in base:
        return base.rstrip("/") + "/" + filename
    return os.path.join(os.path.expanduser(base), filename)


def _is_http(url: str) -> bool:
    return url.split("://", 1)[0].lower() in {"http", "https"} if "://" in url else False


@dataclass
class _Hashes:
    sha256: Any = field(default_factory=hashlib.sha256)
    md5: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    size: int = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        self.md5.update(chunk)
        self.size += len(chunk)


class Decision(enum.Enum):
    """What a failed attempt leads to (see the module docstring)."""

    RETRY = "retry"
    RESTART = "restart"
    NEXT = "next"


class _Failure(Exception):
    """One attempt at one source failed: ``reason`` is the one-line truth, ``then`` the decision."""

    def __init__(
        self,
        reason: str,
        then: Decision,
        *,
        wait: float | None = None,
        unreachable: bool = False,
        brief: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        #: The reason as the final error repeats it, next to the URL or host (which it need not name).
        self.brief = brief or reason
        self.then = then
        #: Seconds the server asked us to wait (Retry-After), if it did.
        self.wait = wait
        #: The network, not the server, failed (DNS, refused, no connection): shapes the final advice.
        self.unreachable = unreachable
        #: It may pass with time (so the final advice says "try again later"), even if not retried now.
        self.transient = then is Decision.RETRY if transient is None else transient


#: What ``open_http`` raises: ``reason`` says in one line why the URL did not answer as asked.
Failure = _Failure


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks for (a number or an HTTP date), None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_failure(status: int, reason: str, retry_after: str | None) -> _Failure:
    """Return the ``Failure`` an HTTP error ``status`` is: its one-line reason and what follows it."""
    text = f"HTTP {status} {reason}".strip()
    if status == 404:
        return _Failure("not found (HTTP 404)", Decision.NEXT)
    if status == 410:
        return _Failure("gone (HTTP 410)", Decision.NEXT)
    if status == 429 or 500 <= status < 600:
        wait = _retry_after(retry_after)
        if wait is not None and wait > MAX_WAIT:
            return _Failure(f"{text}, asks to retry after {wait:.0f} s (more than {MAX_WAIT:.0f} s)", Decision.NEXT, transient=True)
        return _Failure(text, Decision.RETRY, wait=wait)
    return _Failure(text, Decision.NEXT)


def _network_failure(exc: BaseException, stage: str, host: str, received: int = 0) -> _Failure:
    """Name what went wrong with the connection at ``stage`` ("connect", "response" or "body")."""
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, socket.gaierror):
        return _Failure(f"cannot resolve host {host} (DNS: {detail})", Decision.NEXT, unreachable=True, brief="cannot resolve host")
    if isinstance(exc, ConnectionRefusedError):
        return _Failure("connection refused", Decision.NEXT, unreachable=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _Failure(f"TLS error: {exc.verify_message or detail}", Decision.NEXT)
    if isinstance(exc, ssl.SSLError) and stage != "body":
        return _Failure(f"TLS error: {exc.reason or detail}", Decision.NEXT)
    if isinstance(exc, TimeoutError):
        if stage == "connect":
            return _Failure(f"no connection within {_seconds(config.connect_timeout())}", Decision.NEXT, unreachable=True)
        if stage == "response":
            return _Failure(f"stalled: no response within {_seconds(config.timeout())}", Decision.NEXT, transient=True)
        return _Failure(f"stalled: no byte for {_seconds(config.timeout())} after {received:,} bytes", Decision.RETRY)
    if stage == "connect":
        return _Failure(f"cannot connect ({detail})", Decision.NEXT, unreachable=True)
    if stage == "response":
        return _Failure(f"connection closed before a response ({detail})", Decision.RETRY)
    return _Failure(f"connection dropped after {received:,} bytes ({detail})", Decision.RETRY)


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """Return (first byte, total or None) of ``bytes FIRST-LAST/TOTAL``; None if unreadable."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    first = span.split("-", 1)[0]
    if not first.strip().isdigit():
        return None
    return int(first), int(total) if total.strip().isdigit() else None


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"dsreg/{version('dsreg')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "dsreg"


def open_http(
    url: str, offset: int = 0, *, method: str = "GET", last: int | None = None
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send ``method url`` (bytes ``offset`` to ``last``, when either is given) under dsreg's connect and idle
    timeouts, following redirects; return the connection and its response, or raise ``Failure``.

    ``dsreg check-urls`` (``probe``) asks with HEAD, or GET of ``bytes=0-0``, through this same client.
    """
    connect_s, idle_s = config.connect_timeout(), config.timeout()
    for _ in range(MAX_REDIRECTS + 1):
        try:
            config.check_network(url)  # every hop: a redirect must not leave a loopback-only machine
        except FetchError as exc:
            raise _Failure(str(exc), Decision.NEXT) from None
        parts = urlsplit(url)
        https = parts.scheme.lower() == "https"
        try:
            host, port = parts.hostname or "", parts.port or (443 if https else 80)
        except ValueError:
            raise _Failure(f"not a valid URL ({parts.netloc!r})", Decision.NEXT) from None
        conn: http.client.HTTPConnection
        if https:
            conn = http.client.HTTPSConnection(host, port, timeout=connect_s, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_s)
        try:
            conn.connect()  # TCP and, for https, the TLS handshake, under the connect timeout
        except Exception as exc:
            conn.close()
            raise _network_failure(exc, "connect", host) from None
        assert conn.sock is not None
        conn.sock.settimeout(idle_s)  # from here on, a timeout means no byte for idle_s seconds
        headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
        if offset or last is not None:
            headers["Range"] = f"bytes={offset}-{'' if last is None else last}"
        if parts.username:
            login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(login).decode()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(method, target, headers=headers)
            response = conn.getresponse()
        except Exception as exc:
            conn.close()
            raise _network_failure(exc, "response", host) from None
        location = response.getheader("Location")
        if response.status in _REDIRECTS and location:
            conn.close()
            url = urljoin(url, location)
            continue
        return conn, response
    raise _Failure(f"more than {MAX_REDIRECTS} redirects", Decision.NEXT)


def _progress(name: str, total: int | None, initial: int, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=quiet or not sys.stderr.isatty(),
        file=sys.stderr,
        leave=False,
    )


class Downloader:
    """Download one dataset's files into ``cache`` as verified blobs; see the module docstring for the order of sources."""

    def __init__(
        self,
        cache: Cache,
        dataset: str,
        *,
        mirrors: Sequence[str] = (),
        from_path: str | os.PathLike[str] | None = None,
        verify: bool = True,
        force: bool = False,
        quiet: bool = False,
        rerun: Rerun | None = None,
    ) -> None:
        self.cache = cache
        self.dataset = dataset
        self.mirrors = [*mirrors, *config.user_mirrors(dataset)]
        self.from_path = Path(from_path).expanduser() if from_path is not None else None
        self.verify = verify
        self.force = force
        self.quiet = quiet
        #: How to word advice that repeats this fetch (the user's config and options kept).
        self.rerun = rerun or Rerun(dataset, mirrors=tuple(mirrors), from_path=None if from_path is None else str(from_path), verify=verify)
        #: Bytes read from sources by this downloader (resumed bytes not counted twice).
        self.bytes_transferred = 0

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(f"{self.dataset}: {line}", file=sys.stderr, flush=True)

    # -- the public steps --------------------------------------------------------------------
    def cached(self, files: Iterable[File]) -> dict[str, Path] | None:
        """Return ``{file name: blob path}`` if the cache already holds every file as recorded; write nothing."""
        records = self.cache.read_records(self.dataset)
        paths = {}
        for file in files:
            path = self._recorded_blob(file, records.get(file.name))
            if path is None:
                return None
            paths[file.name] = path
        return paths

    def download(self, files: Iterable[File]) -> dict[str, Path]:
        """Return ``{file name: blob path}``, downloading what the cache lacks."""
        files = list(files)
        records = self.cache.read_records(self.dataset)
        paths: dict[str, Path] = {}
        missing: list[File] = []
        for file in files:
            path = None if self.force else self._reusable_blob(file, records)
            if path is None:
                missing.append(file)
            else:
                paths[file.name] = path
        if missing and self.from_path is None and config.offline():
            names = ", ".join(f.name for f in missing)
            message = f"{self.dataset} needs {names}, not in the cache at {self.cache.root} and DSREG_OFFLINE=1 is set"
            raise OfflineError(
                f"{message}; unset DSREG_OFFLINE and call {self.rerun.python()}, or hand it over with {self.rerun.python(from_path='PATH')}",
                cli=f"{message}; unset DSREG_OFFLINE and run `{self.rerun.cli()}`, or hand it over with `{self.rerun.cli(from_path='PATH')}`",
            )
        for file in missing:
            paths[file.name] = self._download_file(file, records)
            self.cache.write_records(self.dataset, records)
        return paths

    def fetch(self, files: Iterable[File]) -> dict[str, Path]:
        """Deprecated: ``download`` (the name of dsreg 0.1)."""
        warnings.warn("Fetcher.fetch is deprecated; use Downloader.download", DeprecationWarning, stacklevel=2)
        return self.download(files)

    def _recorded_blob(self, file: File, record: FileRecord | None) -> Path | None:
        """Return the blob ``record`` names if it is still there and still what ``file`` declares."""
        if record and self._record_fits(file, record):
            path = self.cache.blob_path(record.sha256)
            if path.exists() and path.stat().st_size == record.size:
                return path
        return None

    def _reusable_blob(self, file: File, records: dict[str, FileRecord]) -> Path | None:
        """Return the recorded blob of ``file``, or the same bytes already here for another dataset."""
        path = self._recorded_blob(file, records.get(file.name))
        if path is not None:
            return path
        # Content addressing: a blob with the published checksum is this file, whoever downloaded it.
        sha = file.sha256
        if sha is None and file.md5 and self.cache.md5_index_path(file.md5).exists():
            sha = self.cache.md5_index_path(file.md5).read_text().strip()
        if sha and self.cache.blob_path(sha).exists():
            path = self.cache.blob_path(sha)
            size = path.stat().st_size
            if file.size is None or size == file.size:
                records[file.name] = FileRecord(sha, size, Status.VERIFIED, source="cache", md5=file.md5)
                self.cache.write_records(self.dataset, records)
                return path
        return None

    @staticmethod
    def _record_fits(file: File, record: FileRecord) -> bool:
        """True when the recorded bytes are still what ``file`` declares (its checksum may have changed)."""
        if record.status is Status.UNVERIFIED:  # the user's explicit --no-verify choice stands
            return True
        if file.sha256:
            return record.sha256 == file.sha256
        if file.md5:
            return record.md5 == file.md5
        # A candidate's bytes are reused, so a prepare that failed for another reason is simply redone;
        # `--force` downloads them again (the advice printed when the prepare fails).
        return record.status in (Status.PINNED, Status.CANDIDATE)

    # -- one file ----------------------------------------------------------------------------
    def _sources(self, file: File) -> list[str]:
        """Return the URLs (or paths) to try for ``file``, in order: ``--from`` alone, else mirrors then published URLs."""
        if self.from_path is not None:
            if self.from_path.is_dir():
                return [str(self.from_path / file.name)]
            return [str(self.from_path)]
        return [mirror_url(m, file.name) for m in self.mirrors] + list(file.urls)

    def _download_file(self, file: File, records: dict[str, FileRecord]) -> Path:
        part = self.cache.part_path(self.dataset, file.name)
        try:
            part.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot write to the cache at {self.cache.root} ({exc.strerror}); set DSREG_CACHE to a writable folder"
            ) from exc
        sources = self._sources(file)
        if not sources:
            message = f"{self.dataset}: file {file.name} has no URL"
            raise FetchError(f"{message}; pass mirrors=[URL] or from_path=PATH", cli=f"{message}; pass --mirror URL or --from PATH")
        if self.from_path is not None and not Path(sources[0]).exists():
            raise FetchError(f"{self.dataset}: {file.name} is not at {sources[0]}; pass the folder that holds it or the file itself")
        failures: dict[str, _Failure] = {}
        mismatches: list[str] = []
        # A pin binds only while it stands: `force` is the user starting over, and replaces it.
        previous = records.get(file.name) if file.checksum is None else None
        pin = previous if previous and previous.status is Status.PINNED and not self.force else None
        for index, url in enumerate(sources):
            then = "trying the next source" if index + 1 < len(sources) else "no source left"
            try:
                hashes = self._download_url(url, part, file)
            except _Failure as failure:
                failures[url] = failure
                self._say(f"{url}: {failure.reason}; {then}")
                continue
            problem = self._mismatch(file, hashes, pin)
            if problem:
                if _looks_like_html(part):
                    problem += " (an HTML page, not the file)"
                kept = self.cache.rejected_path(self.dataset, file.name, hashes.sha256.hexdigest())
                kept.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, kept)
                mismatches.append(f"{url}: {problem}; the bytes are kept at {kept}")
                self._say(f"{url}: {problem}; {then}")
                continue
            return self._keep_blob(file, part, hashes, url, records, previous)
        labels = _short_names(list(failures))
        tried = [f"{labels[url]}: {failure.brief}" for url, failure in failures.items()]
        if mismatches:
            message = f"{self.dataset}: {file.name} failed verification from every source ({'; '.join(mismatches + tried)})"
            python, cli = "pass mirrors=[URL] to try another copy", "try another copy with --mirror URL"
            if self.rerun.unverified_ok:
                python += ", or verify=False if this is your own copy"
                cli += ", or --no-verify if this is your own copy"
            if pin:
                python += f"; if the file changed upstream on purpose, {self.rerun.python(force=True)} replaces the pin"
                cli += f"; if the file changed upstream on purpose, `{self.rerun.cli(force=True)}` replaces the pin"
            raise ChecksumError(f"{message}; {python}", cli=f"{message}; {cli}")
        message = f"{self.dataset}: could not fetch {file.name} ({'; '.join(tried)})"
        if all(f.unreachable for f in failures.values()):
            python = cli = "the network looks unreachable: connect and try again, set DSREG_OFFLINE=1 to use only the cache"
            python += ", or pass from_path=PATH to hand over a copy"
            cli += ", or hand over a copy with --from PATH"
        else:
            later = "try again later, " if any(f.transient for f in failures.values()) else ""
            python = f"{later}pass mirrors=[URL] to add a mirror, or from_path=PATH to hand over a copy"
            cli = f"{later}add a mirror with --mirror URL, or hand over a copy with --from PATH"
        raise FetchError(f"{message}; {python}", cli=f"{message}; {cli}")

    def _mismatch(self, file: File, hashes: _Hashes, pin: FileRecord | None) -> str | None:
        """Return how the downloaded bytes differ from what ``file`` (or its ``pin``) declares; None if they do not."""
        if not self.verify:
            return None
        if file.size is not None and hashes.size != file.size:
            return f"size {hashes.size:,} bytes, expected {file.size:,}"
        if file.checksum:
            algo, expected = file.checksum
            actual = getattr(hashes, algo).hexdigest()
            if actual != expected:
                return f"{algo} {actual}, expected {expected}"
        elif pin and pin.sha256 != hashes.sha256.hexdigest():
            return f"sha256 {hashes.sha256.hexdigest()}, expected the pinned {pin.sha256} from the first download"
        return None

    def _keep_blob(
        self, file: File, part: Path, hashes: _Hashes, url: str, records: dict[str, FileRecord], previous: FileRecord | None
    ) -> Path:
        """Move the verified ``part`` into its blob and record where it came from and how it was verified."""
        sha = hashes.sha256.hexdigest()
        target = self.cache.blob_path(sha)
        if target.exists():
            part.unlink()
        else:
            os.replace(part, target)
        md5 = hashes.md5.hexdigest()
        index = self.cache.md5_index_path(md5)
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text(sha + "\n")
        fetched = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        was_pinned = previous is not None and previous.status is Status.PINNED
        pinned = replaces = None
        if not self.verify:
            status = Status.UNVERIFIED
        elif file.checksum:
            status = Status.VERIFIED
        elif was_pinned and previous is not None and previous.sha256 == sha:
            status = Status.PINNED  # the same bytes the pin already proved good
            pinned = previous.pinned or previous.fetched
        else:
            # No published checksum: these bytes become the pin only once the dataset prepares from
            # them (api.fetch pins them), so an HTML error page or a truncated file is never pinned.
            status = Status.CANDIDATE
            if was_pinned and previous is not None:
                replaces = previous.sha256
                self._say(f"{file.name}: --force replaces the pin sha256 {previous.sha256} with {sha} once the dataset prepares")
        records[file.name] = FileRecord(sha, hashes.size, status, source=url, md5=md5, fetched=fetched, pinned=pinned, replaces=replaces)
        return target

    # -- bytes -------------------------------------------------------------------------------
    def _download_url(self, url: str, part: Path, file: File) -> _Hashes:
        """Stream ``url`` into ``part``, resuming and retrying; return the hashes of the whole file."""
        attempts = config.retries()
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(url, part, file)
            except _Failure as failure:
                if failure.then is Decision.RESTART:
                    part.unlink(missing_ok=True)
                if failure.then is Decision.NEXT or attempt == attempts:
                    raise
                if failure.then is Decision.RESTART:
                    wait, what = 0.0, "restarting from byte 0"
                else:
                    wait = max(min(config.backoff() * 2 ** (attempt - 1), MAX_WAIT), failure.wait or 0.0)
                    what = f"retrying in {_seconds(round(wait, 2))}"
                    if part.exists() and part.stat().st_size:
                        what += f" from byte {part.stat().st_size:,}"
                self._say(f"{url}: {failure.reason}; {what} (attempt {attempt + 1} of {attempts})")
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _resume_offset(self, part: Path, file: File) -> int:
        offset = part.stat().st_size if part.exists() else 0
        return 0 if file.size is not None and offset > file.size else offset

    def _attempt(self, url: str, part: Path, file: File) -> _Hashes:
        offset = self._resume_offset(part, file)
        if file.size is not None and offset == file.size:
            return self._hash_part(part, offset)  # a whole file left by an interrupted run: verify it as is
        if _is_http(url):
            return self._attempt_http(url, part, file, offset)
        return self._attempt_fsspec(url, part, file, offset)

    def _attempt_http(self, url: str, part: Path, file: File, offset: int) -> _Hashes:
        conn, response = open_http(url, offset)
        host = urlsplit(url).hostname or url
        try:
            return self._receive_http(response, host, part, file, offset)
        finally:
            conn.close()

    def _receive_http(self, response: http.client.HTTPResponse, host: str, part: Path, file: File, offset: int) -> _Hashes:
        status = response.status
        if status == 206:
            header = response.getheader("Content-Range")
            span = _content_range(header)
            total_ok = span is None or span[1] is None or file.size is None or span[1] == file.size
            if span is None or span[0] != offset or not total_ok:
                raise _Failure(f"wrong Content-Range {header!r} for a resume from byte {offset:,}", Decision.RESTART)
        elif status == 200:
            offset = 0  # a whole file: the server ignored Range (or none was asked), so start over
        elif status == 416:
            raise _Failure(f"HTTP 416: the server has no bytes from byte {offset:,}", Decision.RESTART)
        else:
            raise status_failure(status, response.reason, response.getheader("Retry-After"))
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if kind == "text/html" and self.verify and not file.name.lower().endswith((".html", ".htm")):
            raise _Failure("served an HTML page (Content-Type text/html), not the file", Decision.NEXT)
        length = response.getheader("Content-Length")
        expected = int(length) if length and length.isdigit() else None

        def failed(exc: BaseException, received: int) -> _Failure:
            return _network_failure(exc, "body", host, received)

        hashes, received, full = self._stream(lambda: response.read1(CHUNK), part, offset, file, failed)
        if expected is not None and received < expected and not full:
            raise _Failure(f"connection closed after {received:,} of {expected:,} bytes", Decision.RETRY)
        return hashes

    def _attempt_fsspec(self, url: str, part: Path, file: File, offset: int) -> _Hashes:
        try:
            config.check_network(url)
        except FetchError as exc:
            raise _Failure(str(exc), Decision.NEXT) from None
        try:
            # s3:// and the other object stores: credentials and endpoint the standard way (objectstore).
            fs, path = objectstore.url_to_fs(url)
            source = fs.open(path, "rb")
        except DsregError:  # a missing backend (pip install 'dsreg[s3]'): no other source fixes that
            raise
        except FileNotFoundError:
            raise _Failure("not found", Decision.NEXT) from None
        except PermissionError:
            raise _Failure("permission denied", Decision.NEXT) from None
        except IsADirectoryError:
            raise _Failure("a folder, not a file", Decision.NEXT) from None
        except (ImportError, ValueError) as exc:  # no backend for the scheme, or a malformed URL
            raise _Failure(_reason(exc), Decision.NEXT) from None
        except Exception as exc:
            raise _Failure(_reason(exc), Decision.RETRY) from None

        def failed(exc: BaseException, received: int) -> _Failure:
            return _Failure(f"read failed after {received:,} bytes ({_reason(exc)})", Decision.RETRY)

        with source:
            if offset:
                try:
                    source.seek(offset)
                except Exception as exc:
                    raise _Failure(f"cannot resume at byte {offset:,} ({_reason(exc)})", Decision.RESTART) from None
            return self._stream(lambda: source.read(CHUNK), part, offset, file, failed)[0]

    def _hash_part(self, part: Path, offset: int) -> _Hashes:
        hashes = _Hashes()
        if offset:
            with open(part, "rb") as done:
                while chunk := done.read(CHUNK):
                    hashes.update(chunk)
            if hashes.size != offset:
                raise _Failure(f"{part} changed while resuming", Decision.RESTART)
        return hashes

    def _stream(
        self, read: Callable[[], bytes], part: Path, offset: int, file: File, failed: Callable[[BaseException, int], _Failure]
    ) -> tuple[_Hashes, int, bool]:
        """Append what ``read`` returns to ``part`` from ``offset``; return (hashes, bytes received, full).

        Each chunk is written as soon as it is read, so a cut loses nothing that arrived before it.
        ``full`` is True when the source sent more than the published size and reading stopped
        there (the size check then rejects the file) rather than filling the disk.
        """
        hashes = self._hash_part(part, offset)
        wanted = None if file.size is None else file.size - offset
        received = 0
        try:
            out = open(part, "r+b" if offset else "wb")
        except OSError as exc:
            raise _disk_error(part, exc) from exc
        with out, _progress(file.name, file.size, offset, self.quiet) as bar:
            out.seek(offset)
            out.truncate()
            while True:
                try:
                    chunk = read()
                except Exception as exc:
                    raise failed(exc, received) from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise _disk_error(part, exc) from exc
                hashes.update(chunk)
                received += len(chunk)
                self.bytes_transferred += len(chunk)
                bar.update(len(chunk))
                if wanted is not None and received > wanted:
                    return hashes, received, True
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise _disk_error(part, exc) from exc
        return hashes, received, False


def _short_names(urls: list[str]) -> dict[str, str]:
    """Name each URL in a summary by its host when that is unambiguous (the lines printed per attempt
    gave the whole URL), else by the URL itself."""
    hosts = {url: urlsplit(url).netloc if "://" in url else "" for url in urls}
    if len(urls) > 1 and all(hosts.values()) and len(set(hosts.values())) == len(urls):
        return hosts
    return {url: url for url in urls}


def _looks_like_html(path: Path) -> bool:
    """Return True if ``path`` starts like an HTML page (an error or login page served as the file)."""
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _disk_error(path: Path, exc: OSError) -> CacheError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    advice = "free some space or set DSREG_CACHE to another disk" if full else "set DSREG_CACHE to a writable folder"
    return CacheError(f"cannot write {path} ({exc.strerror or exc}); {advice}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, DsregError):  # already worded for the user
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: The name of dsreg 0.1, kept for callers written against it.
Fetcher = Downloader
