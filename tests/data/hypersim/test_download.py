"""The selective downloader against real servers on loopback (file, HTTP, SeaweedFS S3, moto)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from depthcore.data.hypersim.download import DownloadConfig, download, safe_target, select_members
from depthcore.data.hypersim.zipremote import read_central_directory
from depthcore.errors import DataError
from tests.helpers.net import range_server
from tests.helpers.servers import WEED_BUCKET, fault_proxy

NEEDED = (".color.hdf5", ".depth_meters.hdf5", ".render_entity_id.hdf5", "metadata_scene.csv")


def _needed(name: str) -> bool:
    return name.endswith(NEEDED)


def _zips(source: Path) -> list[Path]:
    return sorted(source.glob("ai_*.zip"))


def _assert_mirrors(source: Path, out: Path) -> int:
    """Every needed member is in ``out`` byte-identical, nothing else is; returns the count."""
    n = 0
    for z in _zips(source):
        with zipfile.ZipFile(z) as zf:
            for info in zf.infolist():
                target = out / info.filename
                if _needed(info.filename):
                    assert target.read_bytes() == zf.read(info), info.filename
                    n += 1
                else:
                    assert not target.exists(), info.filename
    assert not list(out.rglob("*.part"))
    return n


def _cfg(source: str, out: Path, **kw: object) -> DownloadConfig:
    return DownloadConfig(source=source, out_dir=str(out), backoff_s=0.01, workers=3, **kw)


def test_file_round_trip_resume_and_repair(
    hypersim_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(hypersim_source.parent)  # a relative file:// path is resolved from cwd
    out = tmp_path / "raw"
    result = download(_cfg("file://hypersim", out))
    n = _assert_mirrors(hypersim_source, out)
    assert result.members == result.fetched == n == 3 * 2 * 3 + 3
    for name in ("metadata_camera_parameters.csv", "metadata_images_split_scene_v1.csv"):
        assert (out / name).read_bytes() == (hypersim_source / name).read_bytes()
    manifest = json.loads((out / "download_manifest.json").read_text())
    assert len(manifest["members"]) == n and manifest["source"] == "file://hypersim"
    entry = manifest["members"][0]
    assert entry["size"] == (out / entry["path"]).stat().st_size

    again = download(_cfg("file://hypersim", out))
    assert (again.fetched, again.bytes_transferred) == (0, 0)

    damaged = out / manifest["members"][1]["path"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (out / manifest["members"][2]["path"]).unlink()
    repaired = download(_cfg("file://hypersim", out))
    assert repaired.fetched == 2
    _assert_mirrors(hypersim_source, out)


def test_filters_select_cameras_frames_and_kinds(hypersim_source: Path) -> None:
    z = _zips(hypersim_source)[0]
    blob = z.read_bytes()
    members = read_central_directory(lambda a, b: blob[a:b], len(blob), str(z))
    assert len(members) == len(zipfile.ZipFile(z).namelist())
    cfg = DownloadConfig(kinds=("depth",), frames=(1,), cameras=("cam_00",))
    picked = [m.name for m in select_members(members, z.stem, cfg)]
    assert picked == [f"{z.stem}/images/scene_cam_00_geometry_hdf5/frame.0001.depth_meters.hdf5"]
    everything = select_members(members, z.stem, DownloadConfig())
    assert {m.name for m in everything} == {m.name for m in members if _needed(m.name)}


def test_http_selective_with_5xx_and_resume(hypersim_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    first_zip = _zips(hypersim_source)[0]
    with zipfile.ZipFile(first_zip) as zf:
        info = zf.getinfo(
            f"{first_zip.stem}/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5"
        )
        data_at = info.header_offset + 30 + len(info.filename) + len(info.extra)
        raw = first_zip.read_bytes()[data_at : data_at + info.compress_size]
        unneeded = [
            (i.header_offset, i.header_offset + 30 + len(i.filename) + i.compress_size)
            for i in zf.infolist()
            if not _needed(i.filename)
        ]
    half = len(raw) // 2
    part = out / (info.filename + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(raw[:half])  # an interrupted earlier run

    with range_server(hypersim_source) as (url, log):
        log.fail_next = 1  # the very first request gets a 503
        result = download(_cfg(url, out))  # scenes "all": read from the split file over http
    assert log.failed == 1
    _assert_mirrors(hypersim_source, out)
    starts = {(name, a) for name, a, _ in log.served}
    assert (first_zip.name, data_at + half) in starts and (first_zip.name, data_at) not in starts
    for name, a, b in log.served:  # no byte of an unneeded member is ever requested
        if name == first_zip.name and b != first_zip.stat().st_size:  # all but the tail read
            assert all(b <= lo or a >= hi for lo, hi in unneeded), (a, b)
    # Bytes served from the zips: the tail, the central directory, then per needed member a
    # 30-byte local header and its data; never more.
    served = sum(b - a for name, a, b in log.served if name.endswith(".zip"))
    bound = 0
    for z in _zips(hypersim_source):
        with zipfile.ZipFile(z) as zf:
            infos = zf.infolist()
            cd_size = z.stat().st_size - 22 - zf.start_dir
        bound += sum(30 + i.compress_size for i in infos if _needed(i.filename))
        bound += cd_size + min(1024, z.stat().st_size) + 1  # + the 1-byte size probe
    assert served <= bound - half < sum(z.stat().st_size for z in _zips(hypersim_source))
    assert (
        result.bytes_transferred
        == sum(e["compressed_size"] for e in json.loads(result.manifest.read_text())["members"])
        - half
    )


def test_http_gives_up_after_bounded_retries(hypersim_source: Path, tmp_path: Path) -> None:
    with range_server(hypersim_source) as (url, log):
        log.fail_next = 10**6
        with pytest.raises(DataError, match=r"gave up after 3 attempts: .*HTTP 503"):
            download(_cfg(url, tmp_path / "raw", retries=2, scenes=("ai_100_001",)))
    assert log.failed == 3  # the first request (the camera table) and its two retries


def _handmade_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_crc_mismatch_is_detected(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    depth = "ai_900_001/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5"
    _handmade_zip(src / "ai_900_001.zip", {depth: b"0123456789" * 50})
    blob = bytearray((src / "ai_900_001.zip").read_bytes())
    blob[blob.index(b"0123456789") + 7] ^= 0x01  # bit rot in the member data, not the directory
    (src / "ai_900_001.zip").write_bytes(bytes(blob))
    out = tmp_path / "raw"
    with pytest.raises(DataError, match=r"ai_900_001\.zip: .*depth_meters\.hdf5: CRC-32 mismatch"):
        download(_cfg(f"file://{src}", out))
    assert not (out / depth).exists() and not list(out.rglob("*.part"))


def test_zip_slip_member_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    good = "ai_900_001/images/scene_cam_00_final_hdf5/frame.0000.color.hdf5"
    evil = "ai_900_001/../../escaped/scene_cam_00_final_hdf5/frame.0000.color.hdf5"
    _handmade_zip(src / "ai_900_001.zip", {good: b"good", evil: b"evil"})
    out = tmp_path / "nest" / "raw"
    with pytest.raises(DataError, match=r"refused, it would be written outside"):
        download(_cfg(f"file://{src}", out))
    assert (out / good).read_bytes() == b"good"
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "nest" / "escaped").exists()


@pytest.mark.parametrize("name", ["/etc/x", "a/../../b", "a\\..\\b", "C:/x", "a//b", "./a", "a/.."])
def test_safe_target_refuses_escaping_names(tmp_path: Path, name: str) -> None:
    assert safe_target(tmp_path, name) is None


def test_safe_target_keeps_normal_names(tmp_path: Path) -> None:
    assert (
        safe_target(tmp_path, "ai_001_001/images/x.hdf5")
        == tmp_path.resolve() / "ai_001_001/images/x.hdf5"
    )


def _upload(client: object, bucket: str, prefix: str, folder: Path) -> None:
    for f in sorted(folder.iterdir()):
        client.put_object(Bucket=bucket, Key=f"{prefix}/{f.name}", Body=f.read_bytes())


@pytest.mark.integration
def test_seaweedfs_s3_round_trip(
    hypersim_source: Path, seaweedfs: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=seaweedfs)
    _upload(client, WEED_BUCKET, "mirror/hypersim", hypersim_source)
    out = tmp_path / "raw"
    uri = f"s3://{WEED_BUCKET}/mirror/hypersim"
    result = download(_cfg(uri, out, endpoint_url=seaweedfs))  # scenes "all" via S3 listing
    assert result.members == _assert_mirrors(hypersim_source, out)
    assert (out / "metadata_camera_parameters.csv").is_file()
    assert download(_cfg(uri, out, endpoint_url=seaweedfs)).fetched == 0
    with pytest.raises(
        DataError, match=r"s3://hypersim/mirror/hypersim/ai_999_001\.zip: not found"
    ):
        download(_cfg(uri, tmp_path / "x", endpoint_url=seaweedfs, scenes=("ai_999_001",)))


@pytest.mark.integration
def test_s3_flaky_500_is_retried(
    hypersim_source: Path, s3_env: dict[str, str], tmp_path: Path
) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        client.create_bucket(Bucket="flaky")
        _upload(client, "flaky", "hs", hypersim_source)
        with fault_proxy(host, port) as (proxy, log):
            log.fail_next = 2
            scenes = ("ai_100_002",)
            result = download(
                _cfg("s3://flaky/hs", tmp_path / "raw", endpoint_url=proxy, scenes=scenes)
            )
            assert log.failed == 2 and result.fetched == result.members > 0
            log.fail_next = 1
            with pytest.raises(
                DataError, match=r"gave up after 1 attempts: s3://flaky/hs/.*HTTP 500"
            ):
                download(_cfg("s3://flaky/hs", tmp_path / "raw2", endpoint_url=proxy, retries=0))
    finally:
        server.stop()
