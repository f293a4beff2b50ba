"""Retraining that reacts to data: the always-run source listing gates ``download`` in DVC."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from depthcore.data.hypersim.download import DownloadConfig
from depthcore.data.hypersim.listing import list_source, write_listing
from depthcore.errors import DataError
from tests.helpers.net import range_server
from tests.helpers.servers import WEED_BUCKET

ROOT = Path(__file__).resolve().parents[3]


def _cfg(source: str, **kw: object) -> DownloadConfig:
    return DownloadConfig(source=source, retries=1, backoff_s=0.0, **kw)


def test_file_listing_changes_only_with_the_source(hypersim_source: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(hypersim_source, source)
    out = tmp_path / "listing.json"
    listing, changed = write_listing(_cfg(f"file://{source}"), out)
    names = [f["name"] for f in listing["files"]]
    wanted = [p.name for p in sorted(source.glob("[!.]*")) if p.name != "synth_expected_drops.csv"]
    assert changed and names == wanted  # what the download reads: zips and dataset tables
    before = out.read_bytes()
    assert write_listing(_cfg(f"file://{source}"), out) == (listing, False)
    assert out.read_bytes() == before  # no time of its own: same source, same bytes
    (source / "ai_100_001.zip").write_bytes(b"rewritten")
    listing2, changed2 = write_listing(_cfg(f"file://{source}"), out)
    assert changed2 and {"name": "ai_100_001.zip", "size": 9} in [
        {k: f[k] for k in ("name", "size")} for f in listing2["files"]
    ]
    only = list_source(_cfg(f"file://{source}", scenes=("ai_100_002",)))
    assert [f["name"] for f in only["files"] if f["name"].endswith(".zip")] == ["ai_100_002.zip"]
    with pytest.raises(DataError, match=r"scene zip\(s\) not found: \['ai_999_001'\]"):
        list_source(_cfg(f"file://{source}", scenes=("ai_999_001",)))


def test_http_listing_reads_sizes_of_named_and_split_file_scenes(hypersim_source: Path) -> None:
    with range_server(hypersim_source) as (url, log):
        listing = list_source(_cfg(url))
    zips = sorted(p.name for p in hypersim_source.glob("ai_*.zip"))
    by_name = {f["name"]: f for f in listing["files"]}
    assert sorted(n for n in by_name if n.endswith(".zip")) == zips
    assert all(by_name[n]["size"] == (hypersim_source / n).stat().st_size for n in by_name)
    assert log.bytes_sent < sum((hypersim_source / n).stat().st_size for n in zips)  # no bodies


DVC_YAML = """\
stages:
  list_source:
    cmd: python -m stages.list_source --params params.yaml --out listing.json
    always_changed: true
    params: [download]
    outs:
      - listing.json:
          cache: false
          persist: true
  download:
    cmd: python -m stages.download --params params.yaml
    deps: [listing.json]
    params: [download]
    outs:
      - raw:
          persist: true
  count:
    cmd: python count.py
    deps: [raw]
    outs: [scenes.txt]
"""

COUNT = """\
import pathlib
scenes = sorted(p.name for p in pathlib.Path("raw").iterdir() if (p / "images").is_dir())
pathlib.Path("scenes.txt").write_text("\\n".join(scenes))
"""


def _repro(repo: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env["PATH"]))
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.mark.integration
def test_seaweedfs_new_scene_reruns_download_for_it_alone(
    hypersim_source: Path,
    seaweedfs: str,
    s3_env: dict[str, str],
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from prefect.artifacts import Artifact

    from pipelines.flows import retrain

    client = boto3.client("s3", endpoint_url=seaweedfs)
    prefix = "weekly/hypersim"
    zips = sorted(hypersim_source.glob("ai_*.zip"))
    for f in sorted(hypersim_source.iterdir()):
        if f not in zips[-2:]:  # two scenes arrive later
            client.put_object(Bucket=WEED_BUCKET, Key=f"{prefix}/{f.name}", Body=f.read_bytes())
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "count.py").write_text(COUNT)
    download = {
        "source": f"s3://{WEED_BUCKET}/{prefix}",
        "out_dir": "raw",
        "endpoint_url": seaweedfs,
        "retries": 1,
        "backoff_s": 0.0,
        "workers": 2,
    }
    schedule = {"stages": ["list_source", "download", "count"], "download_retries": 0,
                "retry_delay_s": 0}  # fmt: skip
    (repo / "params.yaml").write_text(yaml.safe_dump({"download": download, "schedule": schedule}))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=repo, check=True)

    first = _repro(repo)
    assert _ran(first) == ["list_source", "download", "count"]
    assert (repo / "scenes.txt").read_text().split() == [z.stem for z in zips[:-2]]

    same = _repro(repo)  # unchanged bucket: only the listing runs, and says so
    assert _ran(same) == ["list_source"], same
    assert "unchanged" in same and "Stage 'download' didn't change, skipping" in same
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the weekly flow, same repo, same bucket
    retrain(repo=str(repo))
    summary = Artifact.get("retrain-summary")
    assert summary is not None and "Nothing re-executed" in summary.data, summary.data

    new = zips[-2]
    client.put_object(Bucket=WEED_BUCKET, Key=f"{prefix}/{new.name}", Body=new.read_bytes())
    after = _repro(repo)
    assert _ran(after) == ["list_source", "download", "count"], after
    manifest = json.loads((repo / "raw" / "download_manifest.json").read_text())
    new_members = [m for m in manifest["members"] if m["zip"] == new.name]
    fetched = re.search(r"download: (\d+) members \((\d+) fetched", after)
    assert fetched is not None, after
    assert int(fetched.group(1)) == len(manifest["members"])
    assert int(fetched.group(2)) == len(new_members) > 0  # only the new scene's files moved
    assert (repo / "scenes.txt").read_text().split() == [z.stem for z in zips[:-1]]

    # next week's flow run sees the last scene; what was there is not fetched again
    before = {p: p.stat().st_mtime_ns for p in (repo / "raw").rglob("*.hdf5")}
    last = zips[-1]
    client.put_object(Bucket=WEED_BUCKET, Key=f"{prefix}/{last.name}", Body=last.read_bytes())
    retrain(repo=str(repo))
    summary = Artifact.get("retrain-summary")
    assert summary is not None and "Re-executed: download, count" in summary.data, summary.data
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert any((repo / "raw" / last.stem).rglob("*.hdf5"))
    assert (repo / "scenes.txt").read_text().split() == [z.stem for z in zips]
    listing = json.loads((repo / "listing.json").read_text())
    assert {f["name"]: f["etag"] for f in listing["files"]}[new.name]
