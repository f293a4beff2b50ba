"""What the download source holds right now: a cheap listing that lets DVC see new data.

``download`` is the only stage that reads a remote source, and DVC reruns a stage only
when a dependency changes. With an ``s3://`` or ``https://`` source there is no local
file to hash, so a weekly ``dvc repro`` would never notice a scene added to the bucket.
The ``list_source`` stage (always rerun; seconds, metadata only) writes this listing,
and ``download`` depends on it: the listing changes exactly when a file the download
reads is added, removed or rewritten.

What identifies a file's content without reading it, per scheme:

- ``s3://``: size and ETag (one ``ListObjectsV2`` page per 1000 files); the upload
  time is left out, so re-uploading identical bytes changes nothing.
- ``http(s)://``: size, ``ETag`` and ``Last-Modified`` from a one-byte range request per
  file (the source cannot be listed: scenes come from ``download.scenes`` or the
  split file, as for the download itself).
- ``file://``: size and modification time (ns).

The listing holds no time of its own, so listing an unchanged source writes the same
bytes and DVC skips ``download`` and everything after it.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from depthcore.data.hypersim.download import SCENE_ZIP, DownloadConfig
from depthcore.data.hypersim.sources import (
    FileSource,
    HttpSource,
    MissingError,
    S3Source,
    TransientError,
    open_source,
    retry_transient,
)
from depthcore.data.hypersim.tables import CAMERA_FILE, SPLIT_FILE
from depthcore.errors import DataError
from depthcore.io import write_text_atomic

Entry = dict[str, Any]
T = TypeVar("T")


def _retry_cfg(fn: Callable[[], T], cfg: DownloadConfig) -> T:
    """:func:`retry_transient` with the download section's retry budget."""
    return retry_transient(fn, cfg.retries, cfg.backoff_s)


def _wanted(name: str, cfg: DownloadConfig) -> bool:
    """Whether the download would read ``name``: a dataset table or a wanted scene zip."""
    if name in (CAMERA_FILE, SPLIT_FILE):
        return True
    if not SCENE_ZIP.fullmatch(name):
        return False
    return cfg.scenes == "all" or name.removesuffix(".zip") in cfg.scenes


def _list_file(source: FileSource, cfg: DownloadConfig) -> list[Entry]:
    entries = []
    for path in sorted(source.root.iterdir()):
        if path.is_file() and _wanted(path.name, cfg):
            st = path.stat()
            entries.append({"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return entries


def _list_s3(source: S3Source, cfg: DownloadConfig) -> list[Entry]:
    prefix = f"{source.prefix}/" if source.prefix else ""
    entries: list[Entry] = []
    token: dict[str, str] = {}
    while True:
        resp = _retry_cfg(
            lambda t=token: source._call(  # noqa: SLF001 - the source's one error mapping
                "", source.client.list_objects_v2, Prefix=prefix, Delimiter="/", **t
            ),
            cfg,
        )
        for obj in resp.get("Contents", []):
            name = obj["Key"][len(prefix) :]
            if _wanted(name, cfg):
                etag = str(obj.get("ETag", "")).strip('"')
                entries.append({"name": name, "size": int(obj["Size"]), "etag": etag})
        if not resp.get("IsTruncated"):
            return sorted(entries, key=lambda e: e["name"])
        token = {"ContinuationToken": resp["NextContinuationToken"]}


def _http_head(source: HttpSource, name: str) -> Entry:
    """Size, ETag and Last-Modified of one file from a ``Range: bytes=0-0`` request."""
    url = source.describe(name)
    req = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(req, timeout=source.timeout_s) as resp:
            headers = resp.headers
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise MissingError(f"{url}: not found (HTTP 404)") from exc
        if exc.code >= 500:
            raise TransientError(f"{url}: HTTP {exc.code}") from exc
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except OSError as exc:  # URLError, timeouts, resets
        raise TransientError(f"{url}: {exc}") from exc
    total = headers.get("Content-Range", "").rpartition("/")[2]
    if not total.isdigit():
        raise DataError(f"{url}: no usable Content-Range ({headers.get('Content-Range')!r})")
    return {
        "name": name,
        "size": int(total),
        "etag": headers.get("ETag", "").strip('"'),
        "last_modified": headers.get("Last-Modified", ""),
    }


def _list_http(source: HttpSource, cfg: DownloadConfig) -> list[Entry]:
    names = [CAMERA_FILE, SPLIT_FILE]
    if cfg.scenes == "all":
        split = _retry_cfg(lambda: _read_small(source, SPLIT_FILE), cfg)
        scenes = sorted({row["scene_name"] for row in csv.DictReader(io.StringIO(split))})
    else:
        scenes = list(cfg.scenes)
    names += [f"{scene}.zip" for scene in scenes]
    entries = []
    for name in names:
        try:
            entries.append(_retry_cfg(lambda n=name: _http_head(source, n), cfg))
        except MissingError:
            if name.endswith(".zip"):
                raise
    return entries


def _read_small(source: HttpSource, name: str) -> str:
    size = source.size(name)
    return source.read_range(name, 0, size).decode()


def list_source(cfg: DownloadConfig) -> dict[str, Any]:
    """The listing of ``cfg.source``: the files the download would read and their identity."""
    source = open_source(
        cfg.source, endpoint_url=cfg.endpoint_url, timeout_s=cfg.timeout_s, workers=cfg.workers
    )
    if isinstance(source, FileSource):
        entries = _list_file(source, cfg)
    elif isinstance(source, S3Source):
        entries = _list_s3(source, cfg)
    elif isinstance(source, HttpSource):
        entries = _list_http(source, cfg)
    else:  # pragma: no cover - open_source returns one of the three
        raise DataError(f"{cfg.source}: no listing for {type(source).__name__}")
    zips = [e for e in entries if e["name"].endswith(".zip")]
    if cfg.scenes != "all":
        missing = sorted(set(cfg.scenes) - {e["name"].removesuffix(".zip") for e in zips})
        if missing:
            raise DataError(f"{cfg.source}: scene zip(s) not found: {missing}")
    if not zips:
        raise DataError(f"{cfg.source}: no scene zips (ai_VVV_NNN.zip) to download")
    return {"source": cfg.source, "scenes": cfg.scenes, "files": entries}


def write_listing(cfg: DownloadConfig, out: str | Path) -> tuple[dict[str, Any], bool]:
    """Write the listing to ``out``; also return whether it differs from what was there."""
    listing = list_source(cfg)
    text = json.dumps(listing, indent=1, sort_keys=True) + "\n"
    out = Path(out)
    changed = not out.is_file() or out.read_text() != text
    if changed:
        write_text_atomic(out, text)
    return listing, changed
