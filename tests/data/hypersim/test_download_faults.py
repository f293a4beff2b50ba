"""The downloader under injected network faults (tests/helpers/net.py on loopback).

One run meets every fault kind (resets, truncated bodies, 500/503, 429 with
Retry-After, stalls past the timeout, wrong Content-Length and Content-Range, a zip
replaced mid-download): every member must end complete and byte-identical to the
source's current zip, none corrupt, no partial files; a rerun fetches nothing; a
member that can never be fetched is the only one reported, and a rerun fetches only it.
"""

from __future__ import annotations

from pathlib import Path

from depthcore.data.hypersim.download import DownloadConfig, download
from tests.helpers.net import KINDS
from tests.helpers.reliability.download_faults import run_download_faults


def test_download_survives_twenty_faults(hypersim_source: Path, tmp_path: Path) -> None:
    report = run_download_faults(hypersim_source, tmp_path)
    faults = report.faults
    assert faults.total >= 20
    assert set(faults.injected) == set(KINDS) and faults.replaced == ["ai_100_001.zip"]
    assert faults.refused_412 >= 1  # reads after the replacement were refused, not mixed in
    # the client waited the server's Retry-After (1 s), not its own 10 ms backoff
    assert len(faults.retry_after_waits) == faults.injected["http429"]
    assert min(faults.retry_after_waits) >= 0.9

    run = report.faulted_run
    assert (run.complete, run.corrupt, run.missing, run.leftovers) == (3 * 2 * 3 + 3, [], [], [])
    assert report.rerun_fetched == 0

    missing = report.missing_run
    assert missing.corrupt == [] and missing.leftovers == []
    assert len(missing.missing) == 1 and missing.missing[0].endswith(".depth_meters.hdf5")
    assert missing.missing[0] in report.missing_error
    assert "gave up after 3 attempts" in report.missing_error
    assert report.missing_rerun_fetched == 1
    assert report.final.missing == [] and report.final.corrupt == []


def test_part_left_by_a_kill_after_the_rename_is_removed(
    hypersim_source: Path, tmp_path: Path
) -> None:
    """Killed between moving the verified member into place and deleting its ``.part``:
    the rerun keeps the member and removes the leftover."""
    cfg = DownloadConfig(source=f"file://{hypersim_source}", out_dir=str(tmp_path), backoff_s=0.01)
    download(cfg)
    member = next(tmp_path.rglob("*.depth_meters.hdf5"))
    stale = member.with_name(member.name + ".part")
    stale.write_bytes(b"the compressed bytes of a finished member")
    assert download(cfg).fetched == 0
    assert not stale.exists() and not list(tmp_path.rglob("*.part"))
