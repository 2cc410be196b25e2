"""Object storage: ``s3://`` (and any other fsspec protocol) opened the standard way, with one-line errors.

Every read or write of a URL that is not http(s) or a local path goes through ``url_to_fs``: a missing
backend (s3fs for ``s3://``) is one line saying what to install (``pip install 'dsreg[s3]'``), not
an ImportError from deep inside fsspec. Credentials and the endpoint are found the way the AWS tools
find them — ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or a profile), ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for an S3-compatible server (MinIO, Ceph, moto) —
and fsspec's own configuration (``FSSPEC_S3_*`` variables, ``~/.config/fsspec/*.json``) applies on
top; dsreg passes no options of its own.

``endpoint(url)`` says which host an object-store URL really reaches (an ``s3://bucket/key`` names a
bucket, not a host), so ``DSREG_NETWORK=loopback`` can let a local S3 server through and refuse AWS.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError

__all__ = ["url_to_fs", "missing_backend", "endpoint", "scheme", "S3_SCHEMES", "EXTRAS"]

#: The schemes s3fs serves.
S3_SCHEMES = frozenset({"s3", "s3a"})
#: Scheme -> the pip requirement that brings its fsspec backend.
EXTRAS = {
    "s3": "'dsreg[s3]'",
    "s3a": "'dsreg[s3]'",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}


def scheme(url: str) -> str:
    """Return the lower-case protocol of ``url`` ("" for a plain path)."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def missing_backend(url: str, exc: BaseException | None = None) -> ConfigError:
    """Return the one-line error for a URL whose fsspec backend is not installed."""
    proto = scheme(url)
    package = EXTRAS.get(proto)
    if proto in S3_SCHEMES:
        return ConfigError(f"{url}: reading s3:// needs s3fs, which is not installed; pip install {package}")
    if package:
        return ConfigError(f"{url}: reading {proto}:// needs {package}, which is not installed; pip install {package}")
    detail = f" ({str(exc).strip().splitlines()[0]})" if exc is not None and str(exc).strip() else ""
    return ConfigError(f"{url}: fsspec has no backend for {proto}://{detail}; install the package that provides it")


#: The variables botocore reads for where an S3 client goes and who it is. s3fs reads them when a
#: filesystem is made, and fsspec caches that filesystem by its arguments alone (none, here).
_AWS_ENV = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
_aws_env_seen: tuple[str | None, ...] | None = None


def _forget_stale_s3_clients() -> None:
    """Drop s3fs's cached filesystems when the AWS environment changed since the last object-store URL was opened.

    Otherwise a process that points ``AWS_ENDPOINT_URL`` (or its keys) somewhere else keeps talking to
    the old server through the filesystem fsspec cached for ``s3://``.
    """
    global _aws_env_seen
    now = tuple(os.environ.get(name) for name in _AWS_ENV)
    if _aws_env_seen is not None and now != _aws_env_seen:
        import fsspec

        try:
            fsspec.get_filesystem_class("s3").clear_instance_cache()
        except ImportError:
            pass
    _aws_env_seen = now


def url_to_fs(url: str, **options: Any) -> tuple[Any, str]:
    """Return ``(filesystem, path)`` for ``url``, raising ``missing_backend``'s error when the backend is absent.

    Every object-store URL dsreg reads or writes is opened here (never by ``fsspec.core.url_to_fs``
    directly), so a changed AWS environment is always seen.
    """
    import fsspec

    if scheme(url) in S3_SCHEMES:
        _forget_stale_s3_clients()
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise missing_backend(url, exc) from None


def _fsspec_s3_endpoint() -> str | None:
    """Return the endpoint fsspec's configuration (``FSSPEC_S3_*``, its JSON files) gives s3fs, if any."""
    try:
        from fsspec.config import conf
    except ImportError:  # pragma: no cover - fsspec is a core dependency
        return None
    for proto in ("s3", "s3a"):
        options = conf.get(proto) or {}
        found = options.get("endpoint_url") or (options.get("client_kwargs") or {}).get("endpoint_url")
        if found:
            return str(found)
    return None


def endpoint(url: str) -> str | None:
    """Return the endpoint URL an object-store ``url`` reaches, or None when it cannot be told.

    For ``s3://`` this is, in botocore's order of precedence, ``AWS_ENDPOINT_URL_S3``, then
    ``AWS_ENDPOINT_URL``, with fsspec's configured ``endpoint_url`` over both (fsspec passes it to
    s3fs explicitly); with none of them set, the endpoint botocore resolves (its config file, or
    AWS itself) when s3fs is installed. None for other schemes.
    """
    if scheme(url) not in S3_SCHEMES:
        return None
    found = _fsspec_s3_endpoint() or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if found:
        return found
    try:
        import botocore.session
    except ImportError:
        return None
    try:  # no request is sent: the client only resolves where it would go
        client = botocore.session.get_session().create_client("s3", region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
        return str(client.meta.endpoint_url)
    except Exception:
        return None
