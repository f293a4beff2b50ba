"""Selective, resumable, verified download of Hypersim scene zips.

Only the members training needs are fetched from each ``ai_VVV_NNN.zip``
(colour, depth, entity id, ``_detail/metadata_scene.csv``: a few percent of
1.9 TB), by range reads of the zip's central directory and of each member
(see :mod:`depthcore.data.hypersim.zipremote`), from ``file://``, ``http(s)://`` or
``s3://`` sources (:mod:`depthcore.data.hypersim.sources`). Output layout is the zip's:
``out_dir/<scene>/images/...`` plus the dataset-wide ``out_dir/metadata_*.csv``
and ``out_dir/download_manifest.json``.

Robustness, because a 1.9 TB transfer will be interrupted: compressed bytes
go to ``<file>.part`` and a rerun continues from where it stopped; every
member is checked against the size and CRC-32 of the zip directory (a corrupt
member is refetched once, then reported); connection errors, timeouts, short or
mislabelled bodies and 5xx/408/429 answers are retried with exponential backoff
(at least the server's ``Retry-After``), a bounded number of times; a zip
replaced at the source while it is being read (another ETag or size) has its
directory read again and the members that differ fetched again, so no file
mixes two versions; a member whose name would land outside ``out_dir``
(zip-slip) is refused and reported. A run that cannot get everything names
each missing member and fails; what did arrive is complete and verified, and a
rerun fetches only the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from tqdm import tqdm

from depthcore.config import frozen, param
from depthcore.data.hypersim.sources import (
    ChangedError,
    MissingError,
    Source,
    open_source,
    retry_changed,
    retry_transient,
)
from depthcore.data.hypersim.tables import CAMERA_FILE, SPLIT_FILE
from depthcore.data.hypersim.zipremote import (
    ZipMember,
    check_supported,
    file_crc32,
    inflate_to,
    member_data_offset,
    read_central_directory,
)
from depthcore.errors import DataError
from depthcore.io import atomic_path, write_bytes_atomic, write_text_atomic

log = logging.getLogger(__name__)
T = TypeVar("T")

Kind = Literal["color", "depth", "entity", "metadata"]
DATASET_CSVS = (CAMERA_FILE, SPLIT_FILE)
MANIFEST = "download_manifest.json"
SCENE_ZIP = re.compile(r"ai_\d{3}_\d{3}\.zip")
_FOLDER = {"color": "final_hdf5", "depth": "geometry_hdf5", "entity": "geometry_hdf5"}
_SUFFIX = {"color": "color", "depth": "depth_meters", "entity": "render_entity_id"}
_CHUNK = 1 << 20


@frozen
class DownloadConfig:
    """The ``download`` params section.

    ``scenes`` is ``all`` (every ``ai_VVV_NNN.zip`` the source lists, or the scenes of
    its split file for http sources) or a list of scene names; empty ``cameras``/``frames``
    mean all; ``endpoint_url`` overrides boto3's S3 endpoint (empty: boto3's own config).
    """

    source: str = "file://data/source/hypersim"
    out_dir: str = "data/raw/hypersim"
    scenes: Literal["all"] | tuple[str, ...] = "all"
    cameras: tuple[str, ...] = ()
    frames: tuple[int, ...] = param((), ge=0)
    kinds: tuple[Kind, ...] = ("color", "depth", "entity", "metadata")
    workers: int = param(4, gt=0)
    retries: int = param(4, ge=0)
    backoff_s: float = param(0.5, ge=0)
    timeout_s: float = param(60.0, gt=0)
    endpoint_url: str = ""

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("kinds must name at least one of color, depth, entity, metadata")


@dataclass(frozen=True)
class DownloadResult:
    """What a run did: the manifest written, members present, bytes moved this run."""

    manifest: Path
    members: int
    fetched: int
    bytes_transferred: int


def _kind_of(parts: list[str]) -> tuple[str, str | None, int | None] | None:
    """(kind, camera, frame) of a member path split on ``/``, or None if not wanted at all."""
    if parts[1:] == ["_detail", "metadata_scene.csv"]:
        return "metadata", None, None
    if len(parts) < 2:
        return None
    folder, leaf = parts[-2], parts[-1]
    for kind, suffix in _SUFFIX.items():
        fm = re.fullmatch(rf"scene_(cam_\d+)_{_FOLDER[kind]}", folder)
        lm = re.fullmatch(rf"frame\.(\d+)\.{suffix}\.hdf5", leaf)
        if fm and lm:
            return kind, fm.group(1), int(lm.group(1))
    return None


def select_members(members: list[ZipMember], scene: str, cfg: DownloadConfig) -> list[ZipMember]:
    """The members of ``scene``'s zip that ``cfg`` asks for."""
    out = []
    for m in members:
        parts = m.name.split("/")
        found = _kind_of(parts) if parts[0] == scene else None
        if found is None or found[0] not in cfg.kinds:
            continue
        _, camera, frame = found
        if camera is not None and cfg.cameras and camera not in cfg.cameras:
            continue
        if frame is not None and cfg.frames and frame not in cfg.frames:
            continue
        out.append(m)
    return out


def safe_target(out_dir: Path, name: str) -> Path | None:
    """``out_dir/name``, or None when ``name`` is absolute, has ``..``/empty parts or a drive,
    or otherwise resolves outside ``out_dir`` (zip-slip)."""
    parts = name.split("/")
    if "\\" in name or ":" in name or any(p in ("", ".", "..") for p in parts):
        return None
    root = out_dir.resolve()
    target = (root / name).resolve()
    return target if target.is_relative_to(root) and target != root else None


def _list_scenes(source: Source, cfg: DownloadConfig) -> list[str]:
    if cfg.scenes != "all":
        return list(cfg.scenes)
    try:
        names = retry_transient(source.list_names, cfg.retries, cfg.backoff_s)
        return sorted(n[: -len(".zip")] for n in names if SCENE_ZIP.fullmatch(n))
    except MissingError:
        raise
    except DataError:  # http: no listing; the split file names the scenes
        text = _read_whole(source, SPLIT_FILE, cfg).decode()
        return sorted({row["scene_name"] for row in csv.DictReader(io.StringIO(text))})


def _range_reader(source: Source, name: str, cfg: DownloadConfig) -> Callable[[int, int], bytes]:
    """``read(start, stop)`` of source file ``name``, retried on transient errors."""

    def read(start: int, stop: int) -> bytes:
        return retry_transient(
            lambda: source.read_range(name, start, stop), cfg.retries, cfg.backoff_s
        )

    return read


def _read_whole(source: Source, name: str, cfg: DownloadConfig) -> bytes:
    def once() -> bytes:
        size = retry_transient(lambda: source.size(name), cfg.retries, cfg.backoff_s)
        read = _range_reader(source, name, cfg)
        return b"".join(read(pos, min(pos + _CHUNK, size)) for pos in range(0, size, _CHUNK))

    return retry_changed(once, source.describe(name), cfg.retries)


def _fetch_member(
    source: Source, zip_name: str, member: ZipMember, target: Path, cfg: DownloadConfig, bar: tqdm
) -> int:
    """Make ``target`` hold ``member`` intact; return the bytes moved (0: it already did).

    On :class:`ChangedError` the partial bytes (of the old version) are dropped and the
    error propagates: the caller re-reads the zip directory.
    """
    where = source.describe(zip_name)
    part = target.with_name(target.name + ".part")
    intact = target.is_file() and target.stat().st_size == member.size
    if intact and file_crc32(target) == member.crc32:
        part.unlink(missing_ok=True)  # a run killed between the rename and the cleanup
        bar.update(member.compressed_size)
        return 0
    check_supported(member, where)
    target.parent.mkdir(parents=True, exist_ok=True)
    moved = 0
    read = _range_reader(source, zip_name, cfg)
    for attempt in range(2):  # a corrupt .part or corrupt bytes get one clean refetch
        try:
            start = member_data_offset(read, member, where)
            have = part.stat().st_size if part.exists() else 0
            if have > member.compressed_size:
                part.unlink()
                have = 0
            bar.update(have)
            with open(part, "ab") as f:
                for pos in range(have, member.compressed_size, _CHUNK):
                    data = read(start + pos, start + min(pos + _CHUNK, member.compressed_size))
                    f.write(data)
                    f.flush()
                    moved += len(data)
                    bar.update(len(data))
        except ChangedError:  # bytes of the old version: useless
            part.unlink(missing_ok=True)
            raise
        except DataError:  # keep partial bytes for the next run, but no empty file
            if part.exists() and part.stat().st_size == 0:
                part.unlink()
            raise
        try:
            with atomic_path(target) as tmp:
                inflate_to(part, member, tmp, where)
        except DataError:
            part.unlink()
            if attempt == 1:
                raise
            log.warning("%s: %s failed verification; fetching it again", where, member.name)
            continue
        part.unlink()
        return moved
    raise AssertionError("unreachable")


def _fetch_csvs(source: Source, out_dir: Path, cfg: DownloadConfig) -> list[dict[str, object]]:
    """The dataset-wide tables at the source root, where present (whole-file reads)."""
    done = []
    for name in DATASET_CSVS:
        try:
            size = retry_transient(lambda n=name: source.size(n), cfg.retries, cfg.backoff_s)
        except MissingError:
            log.info("%s: not at the source; the package copy will be used", name)
            continue
        target = out_dir / name
        if not (target.is_file() and target.stat().st_size == size):
            data = _read_whole(source, name, cfg)
            write_bytes_atomic(target, data)
        done.append({"path": name, "size": size})
    return done


@dataclass
class _ZipPlan:
    """One scene zip's wanted members (as of its latest directory read) and refusals."""

    zip_name: str
    jobs: list[tuple[str, ZipMember, Path]]
    refused: list[str]


def _plan_zip(source: Source, scene: str, out_dir: Path, cfg: DownloadConfig) -> _ZipPlan:
    """Read ``scene``'s zip directory (its size and version too) and pick the wanted members."""
    zip_name = f"{scene}.zip"
    where = source.describe(zip_name)

    def read_directory() -> list[ZipMember]:
        size = retry_transient(lambda: source.size(zip_name), cfg.retries, cfg.backoff_s)
        return read_central_directory(_range_reader(source, zip_name, cfg), size, where)

    directory = retry_changed(read_directory, where, cfg.retries)
    wanted = select_members(directory, scene, cfg)
    if not wanted:
        raise DataError(f"{where}: no members of kinds {list(cfg.kinds)} match the filters")
    plan = _ZipPlan(zip_name, [], [])
    for m in wanted:
        target = safe_target(out_dir, m.name)
        if target is None:
            plan.refused.append(f"{where}: {m.name}")
            log.error(
                "%s: refusing member %r: it would be written outside %s", where, m.name, out_dir
            )
        else:
            plan.jobs.append((zip_name, m, target))
    return plan


@dataclass
class _PassResult:
    """One pass over some zips: per zip the failure lines, and which zips changed."""

    failures: dict[str, list[str]]
    changed: set[str]
    moved: int = 0
    fetched: int = 0


def _fetch_pass(
    source: Source, plans: list[_ZipPlan], cfg: DownloadConfig, bar: tqdm
) -> _PassResult:
    """Fetch every job of ``plans`` in parallel; a zip that changed is noted, not failed."""
    result = _PassResult({p.zip_name: [] for p in plans}, set())
    jobs = [job for p in plans for job in p.jobs]
    with cf.ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        futures = {
            pool.submit(_fetch_member, source, z, m, t, cfg, bar): (z, m) for z, m, t in jobs
        }
        for fut in cf.as_completed(futures):
            zip_name, member = futures[fut]
            try:
                n = fut.result()
            except ChangedError as exc:
                log.warning("%s; reading its directory again", exc)
                result.changed.add(zip_name)
                continue
            except DataError as exc:
                line = str(exc) if member.name in str(exc) else f"{member.name}: {exc}"
                result.failures[zip_name].append(line)
                continue
            result.moved += n
            result.fetched += n > 0
    return result


def download(cfg: DownloadConfig) -> DownloadResult:
    """Fetch the wanted members of every wanted scene into ``cfg.out_dir`` (see module doc).

    Raises :class:`DataError` naming the source file and member on a missing
    scene, an exhausted retry budget, a CRC/size mismatch, a refused member name
    or a zip that kept changing; the members that did arrive stay in place,
    complete and verified, for the next run.
    """
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = open_source(
        cfg.source, endpoint_url=cfg.endpoint_url, timeout_s=cfg.timeout_s, workers=cfg.workers
    )
    csv_entries = _fetch_csvs(source, out_dir, cfg)
    plans = {
        f"{scene}.zip": _plan_zip(source, scene, out_dir, cfg)
        for scene in _list_scenes(source, cfg)
    }
    failures: dict[str, list[str]] = {}
    moved = fetched = 0
    pending = list(plans.values())
    total = sum(m.compressed_size for p in pending for _, m, _ in p.jobs)
    with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=None) as bar:
        for _ in range(cfg.retries + 1):  # a zip replaced mid-run: read again, fetch the rest
            done = _fetch_pass(source, pending, cfg, bar)
            failures.update(done.failures)
            moved, fetched = moved + done.moved, fetched + done.fetched
            for zip_name in done.changed:
                failures.pop(zip_name, None)
                plans[zip_name] = _plan_zip(source, zip_name[: -len(".zip")], out_dir, cfg)
            pending = [plans[z] for z in sorted(done.changed)]
            if not pending:
                break
    for p in pending:
        failures[p.zip_name] = [f"{source.describe(p.zip_name)}: kept changing while being read"]
    refused = [r for p in plans.values() for r in p.refused]
    lines = [line for z in sorted(failures) for line in failures[z]]
    lines += [f"{r}: refused, it would be written outside {out_dir}" for r in refused]
    if lines:
        raise DataError(
            f"download from {cfg.source} incomplete ({len(lines)} problems; what arrived is "
            "verified and a rerun fetches only the rest):\n  " + "\n  ".join(lines)
        )

    jobs = [job for p in plans.values() for job in p.jobs]
    members = [
        {
            "path": m.name,
            "zip": z,
            "size": m.size,
            "compressed_size": m.compressed_size,
            "crc32": f"{m.crc32:08x}",
        }
        for z, m, _ in sorted(jobs, key=lambda j: j[1].name)
    ]
    manifest = {
        "source": cfg.source,
        "kinds": list(cfg.kinds),
        "members": members,
        "csv": csv_entries,
    }
    write_text_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    log.info("%d members (%d fetched, %d bytes) from %s", len(jobs), fetched, moved, cfg.source)
    return DownloadResult(out_dir / MANIFEST, len(jobs), fetched, moved)
