"""The downloader against the range server's faults (tests/helpers/net.py), then reruns.

``python -m tests.helpers.reliability.download_faults`` prints the figures; the same runs back
``tests/data/hypersim/test_download_faults.py`` and ``python -m bench.reliability.report``.

Run 1 (faults): every kind of :data:`tests.helpers.net.KINDS`, round-robin, on the first
attempt of every other distinct request, and one scene zip replaced by a new version
mid-download. Expected: every member complete and byte-identical to the *current*
source zip (CRC-verified), zero corrupt files, no ``.part`` left.
Run 2 (rerun, no faults): nothing fetched.
Run 3 (a member that can never be fetched): it alone is reported missing, everything
else complete; run 4 (the fault gone): exactly that member fetched.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from depthcore.data.hypersim.download import DownloadConfig, download
from depthcore.errors import DataError
from depthcore.synth.hypersim import generate_hypersim
from tests.helpers.hypersim_files import SMALL_SOURCE
from tests.helpers.net import FaultPlan, ServerLog, range_server

NEEDED = (".color.hdf5", ".depth_meters.hdf5", ".render_entity_id.hdf5", "metadata_scene.csv")


@dataclass
class MirrorCheck:
    """Each needed member of the source zips: complete (byte-identical), corrupt or missing."""

    complete: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # .part / .tmp- files


def check_mirror(source: Path, out: Path) -> MirrorCheck:
    """Compare ``out`` with the needed members of the zips now in ``source``."""
    check = MirrorCheck()
    for z in sorted(source.glob("ai_*.zip")):
        with zipfile.ZipFile(z) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(NEEDED):
                    continue
                target = out / info.filename
                if not target.is_file():
                    check.missing.append(info.filename)
                elif target.read_bytes() != zf.read(info):
                    check.corrupt.append(info.filename)
                else:
                    check.complete += 1
    check.leftovers = sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.name.endswith(".part") or ".tmp-" in p.name
    )
    return check


def new_version(zip_path: Path) -> bytes:
    """``zip_path`` re-packed with every colour member changed (so sizes and offsets move)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".color.hdf5"):
                data += b"-version-2"
            dst.writestr(info.filename, data)
    return buf.getvalue()


def member_data_span(zip_path: Path, suffix: str) -> tuple[str, tuple[int, int]]:
    """(name, [start, stop) of the compressed bytes) of the first member ending in ``suffix``."""
    with zipfile.ZipFile(zip_path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(suffix))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return info.filename, (start, start + info.compress_size)


@dataclass
class FaultRunReport:
    """The figures of :func:`run_download_faults`."""

    faults: ServerLog
    faulted_run: MirrorCheck
    rerun_fetched: int
    missing_run: MirrorCheck
    missing_error: str
    missing_rerun_fetched: int
    final: MirrorCheck


def _cfg(url: str, out: Path) -> DownloadConfig:
    return DownloadConfig(
        source=url, out_dir=str(out), workers=3, retries=2, backoff_s=0.01, timeout_s=0.5
    )


def run_download_faults(source: Path, work: Path) -> FaultRunReport:
    """The four runs of the module docstring on a copy of the Hypersim-format ``source``."""
    src = work / "source"
    shutil.copytree(source, src)
    zips = sorted(src.glob("ai_*.zip"))
    plan = FaultPlan(replace_after={zips[0].name: (6, new_version(zips[0]))})
    out = work / "raw"
    with range_server(src, plan) as (url, log):
        download(_cfg(url, out))
    faulted = check_mirror(src, out)
    quiet = FaultPlan(fault_every=0)
    with range_server(src, quiet) as (url, _):
        rerun = download(_cfg(url, out))

    out2 = work / "raw_missing"
    _, span = member_data_span(zips[-1], ".depth_meters.hdf5")
    broken = FaultPlan(fault_every=0, always_fail={zips[-1].name: [span]})
    error = ""
    with range_server(src, broken) as (url, _):
        try:
            download(_cfg(url, out2))
        except DataError as exc:
            error = str(exc)
    missing = check_mirror(src, out2)
    with range_server(src, quiet) as (url, _):
        fixed = download(_cfg(url, out2))
    return FaultRunReport(
        log, faulted, rerun.fetched, missing, error, fixed.fetched, check_mirror(src, out2)
    )


def generate_small_source(out: Path) -> Path:
    """A :data:`SMALL_SOURCE` under ``out``."""
    generate_hypersim(out, SMALL_SOURCE)
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = run_download_faults(generate_small_source(work / "hypersim"), work / "run")
    f = report.faulted_run
    print(f"faults injected: {report.faults.total} {dict(report.faults.injected)}")
    print(f"  replaced mid-download: {report.faults.replaced}, 412s: {report.faults.refused_412}")
    print(f"  Retry-After waits (s): {[round(w, 2) for w in report.faults.retry_after_waits]}")
    print(f"faulted run: {f.complete} complete, {len(f.corrupt)} corrupt, {len(f.missing)} missing")
    print(f"rerun fetched: {report.rerun_fetched}")
    m = report.missing_run
    print(f"missing run: {m.complete} complete, {len(m.corrupt)} corrupt, {len(m.missing)} missing")
    print(f"missing rerun fetched: {report.missing_rerun_fetched}, then {report.final.missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
