"""Byte-range access to a folder of files over ``file://``, ``http(s)://`` and ``s3://``.

The selective downloader needs exactly three things from wherever Hypersim
lives: a file's size, an arbitrary byte range of it, and (for ``scenes: all``)
the list of scene zips. Keeping the transport behind this small interface lets
one zip reader serve a local mirror, Apple's HTTPS bucket and any
S3-compatible store. Transient failures (connection errors, timeouts, short or
mislabelled bodies, HTTP 5xx, 408, 429 with its ``Retry-After``) raise
:class:`TransientError` so the caller can retry them with backoff; a file that
changed since its size was read (another ETag, size or mtime) raises
:class:`ChangedError`, so the caller re-reads the zip directory instead of
mixing bytes of two versions; anything else is a
:class:`~depthcore.errors.DataError` naming the file.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from depthcore.errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransientError(Exception):
    """A failure worth retrying: a dropped connection, a timeout, a 5xx answer.

    ``retry_after`` is the wait in seconds the server asked for (HTTP ``Retry-After``).
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChangedError(Exception):
    """The file was replaced since its size (and ETag) were read: offsets are stale."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class MissingError(DataError):
    """The requested file does not exist at the source."""


class Source(Protocol):
    """A read-only folder of files addressed by relative names (``ai_001_001.zip``)."""

    def describe(self, name: str) -> str:
        """The full address of ``name`` (for messages)."""
        ...

    def size(self, name: str) -> int:
        """The size of ``name`` in bytes; :class:`MissingError` if it does not exist."""
        ...

    def read_range(self, name: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of ``name``."""
        ...

    def list_names(self) -> list[str]:
        """The file names at the source's top level."""
        ...


class FileSource:
    """A local mirror; a relative root is resolved from the current directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: file:// source folder does not exist")
        self._versions: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns)

    def describe(self, name: str) -> str:
        return str(self.root / name)

    def size(self, name: str) -> int:
        path = self.root / name
        if not path.is_file():
            raise MissingError(f"{path}: not found in the file:// source")
        st = path.stat()
        self._versions[name] = (st.st_size, st.st_mtime_ns)
        return st.st_size

    def read_range(self, name: str, start: int, stop: int) -> bytes:
        path = self.root / name
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                seen = self._versions.get(name)
                if seen is not None and seen != (st.st_size, st.st_mtime_ns):
                    raise ChangedError(f"{path}: file changed since its size was read")
                f.seek(start)
                data = f.read(stop - start)
        except FileNotFoundError as exc:
            raise MissingError(f"{path}: not found in the file:// source") from exc
        except OSError as exc:
            raise DataError(f"{path}: cannot read bytes {start}-{stop}: {exc}") from exc
        if len(data) != stop - start:
            raise DataError(f"{path}: short read at {start}-{stop} (file truncated?)")
        return data

    def list_names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_file())


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class HttpSource:
    """HTTP(S) with ``Range`` requests (urllib); no listing, so ``scenes: all`` reads the
    source's split file instead (see the downloader)."""

    def __init__(self, base_url: str, timeout_s: float = 60.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._versions: dict[str, tuple[int, str]] = {}  # name -> (size, ETag) from size()

    def describe(self, name: str) -> str:
        return f"{self.base}/{name}"

    def _get(self, name: str, start: int, stop: int) -> tuple[bytes, int, str]:
        """(body, total size, ETag) of bytes ``[start, stop)``; the body length and the
        ``Content-Range`` are checked against what was asked for."""
        url = self.describe(name)
        headers = {"Range": f"bytes={start}-{stop - 1}"}
        etag = self._versions.get(name, (0, ""))[1]
        if etag:
            headers["If-Match"] = etag
        req = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                if resp.status != 206:
                    raise DataError(f"{url}: server ignored the Range request (HTTP {resp.status})")
                body = resp.read()
                content_range = resp.headers.get("Content-Range", "")
                etag = resp.headers.get("ETag", "")
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code in (408, 429):
                wait = parse_retry_after(exc.headers.get("Retry-After"))
                raise TransientError(f"{url}: HTTP {exc.code}", retry_after=wait) from exc
            if exc.code == 412:
                raise ChangedError(f"{url}: changed since it was first read (HTTP 412)") from exc
            if exc.code == 404:
                raise MissingError(f"{url}: not found (HTTP 404)") from exc
            raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (
            TimeoutError,
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
        ) as exc:
            raise TransientError(f"{url}: {exc}") from exc
        m = _CONTENT_RANGE.fullmatch(content_range.strip())
        if not m or m.group(3) == "*":
            raise TransientError(f"{url}: no usable Content-Range ({content_range!r})")
        first, last, total = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if first != start or last != min(stop, total) - 1 or len(body) != last - first + 1:
            raise TransientError(
                f"{url}: asked for bytes {start}-{stop - 1}, got {len(body)} bytes "
                f"labelled {content_range!r}"
            )
        return body, total, etag

    def size(self, name: str) -> int:
        self._versions.pop(name, None)  # a fresh look: accept whatever version is there now
        _, total, etag = self._get(name, 0, 1)
        self._versions[name] = (total, etag)
        return total

    def read_range(self, name: str, start: int, stop: int) -> bytes:
        data, total, etag = self._get(name, start, stop)
        seen_total, seen_etag = self._versions.get(name, (total, etag))
        if total != seen_total or (etag and seen_etag and etag != seen_etag):
            raise ChangedError(
                f"{self.describe(name)}: changed since it was first read "
                f"(size {seen_total} -> {total}, ETag {seen_etag or '?'} -> {etag or '?'})"
            )
        if len(data) != stop - start:
            raise TransientError(
                f"{self.describe(name)}: got {len(data)} of {stop - start} bytes at {start}"
            )
        return data

    def list_names(self) -> list[str]:
        raise DataError(f"{self.base}: an http(s) source cannot be listed; name the scenes")


class S3Source:
    """``s3://bucket/prefix`` through boto3: credentials, region and endpoint from the usual
    boto3 environment/config files; ``endpoint_url`` (params) overrides the endpoint. Without
    credentials requests go unsigned (public buckets). boto3's own retries are off: the
    downloader's bounded retry with backoff is the one policy."""

    def __init__(
        self, uri: str, endpoint_url: str = "", workers: int = 4, timeout_s: float = 60.0
    ) -> None:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        rest = uri[len("s3://") :]
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        session = boto3.session.Session()
        cfg = Config(
            retries={"total_max_attempts": 1},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            max_pool_connections=max(10, workers + 2),
            signature_version=None if session.get_credentials() else UNSIGNED,
        )
        self.client = session.client("s3", endpoint_url=endpoint_url or None, config=cfg)
        self._etags: dict[str, str] = {}  # name -> ETag from size()

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def describe(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def _call(self, name: str, fn: Callable[..., dict], **kw: object) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kw)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = exc.response.get("Error", {}).get("Code", "")
            if status >= 500 or status in (408, 429) or code == "SlowDown":
                raise TransientError(f"{self.describe(name)}: {code} (HTTP {status})") from exc
            if status == 412:
                raise ChangedError(
                    f"{self.describe(name)}: changed since it was first read"
                ) from exc
            if status == 404 or code in ("NoSuchKey", "404", "NoSuchBucket"):
                raise MissingError(f"{self.describe(name)}: not found ({code})") from exc
            raise DataError(f"{self.describe(name)}: {code} (HTTP {status})") from exc
        except BotoCoreError as exc:  # connection refused/reset, timeouts, truncated bodies
            raise TransientError(f"{self.describe(name)}: {exc}") from exc

    def size(self, name: str) -> int:
        head = self._call(name, self.client.head_object, Key=self._key(name))
        self._etags[name] = head.get("ETag", "")
        return int(head["ContentLength"])

    def read_range(self, name: str, start: int, stop: int) -> bytes:
        from botocore.exceptions import BotoCoreError

        etag = self._etags.get(name, "")
        resp = self._call(
            name,
            self.client.get_object,
            Key=self._key(name),
            Range=f"bytes={start}-{stop - 1}",
            **({"IfMatch": etag} if etag else {}),
        )
        try:
            data = resp["Body"].read()
        except (BotoCoreError, ConnectionError) as exc:
            raise TransientError(f"{self.describe(name)}: {exc}") from exc
        if len(data) != stop - start:
            raise TransientError(f"{self.describe(name)}: got {len(data)} of {stop - start} bytes")
        return data

    def list_names(self) -> list[str]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            resp = self._call(
                "", self.client.list_objects_v2, Prefix=prefix, Delimiter="/", **token
            )
            names += [obj["Key"][len(prefix) :] for obj in resp.get("Contents", [])]
            if not resp.get("IsTruncated"):
                return sorted(names)
            token = {"ContinuationToken": resp["NextContinuationToken"]}


#: The longest ``Retry-After`` honoured; a server asking for more gets this much.
MAX_RETRY_AFTER_S = 120.0


def retry_transient(fn: Callable[[], T], retries: int, backoff_s: float) -> T:
    """Call ``fn``; on :class:`TransientError` (whose message names the file) wait
    ``backoff_s * 2**k``, or the server's ``Retry-After`` if longer (at most
    :data:`MAX_RETRY_AFTER_S`), and retry, at most ``retries`` times."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except TransientError as exc:
            if attempt == retries:
                raise DataError(f"gave up after {retries + 1} attempts: {exc}") from exc
            delay = backoff_s * 2**attempt
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER_S))
            log.warning("%s; retrying in %.2f s", exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def retry_changed(fn: Callable[[], T], what: str, retries: int) -> T:
    """Call ``fn`` (which reads a file's size, then parts of it) again when the file
    changed in between, at most ``retries`` times."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except ChangedError as exc:
            if attempt == retries:
                raise DataError(f"{what}: kept changing while being read ({exc})") from exc
            log.warning("%s; reading it again", exc)
    raise AssertionError("unreachable")


def open_source(
    uri: str, *, endpoint_url: str = "", timeout_s: float = 60.0, workers: int = 4
) -> Source:
    """The :class:`Source` for ``file://``, ``http(s)://`` or ``s3://`` ``uri``."""
    if uri.startswith("file://"):
        return FileSource(Path(os.path.expanduser(uri[len("file://") :])))
    if uri.startswith(("http://", "https://")):
        return HttpSource(uri, timeout_s)
    if uri.startswith("s3://"):
        return S3Source(uri, endpoint_url, workers, timeout_s)
    raise DataError(f"download source {uri!r}: unsupported scheme (use file://, http(s)://, s3://)")
