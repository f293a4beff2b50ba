"""Speed of the Hypersim data path: figures to read, not assertions.

Generates a few synthetic Hypersim scene zips in a temporary folder, then prints

* the selective download from a ``file://`` source and from a loopback HTTP server
  with ``Range`` support: bytes fetched against total zip bytes (the selective ratio;
  for HTTP the bytes the server actually sent, central directories and local headers
  included) and MB/s;
* the preprocessing throughput (frames/s, with ``--preprocess-workers``, default 1 2 4
  worker processes) next to the rate of just opening and reading the colour, depth
  and entity datasets with h5py, and their ratio; medians of ``--repeats`` runs.

``--raw DIR`` skips the synth and download steps and measures an existing download
folder (e.g. frames at Hypersim's real 1024 x 768, which take minutes to render).

The synthetic zips hold colour, tone-mapped preview, depth, entity id and camera
normals per frame; a real Hypersim zip holds about thirty members per frame (the
other render passes, positions, semantics, more previews), so the ratio printed here
is an upper bound of what a real scene gives.

    python bench/bench_data.py --scenes 4 --cameras 2 --frames 6 --height 96 --width 128
    python bench/bench_data.py --scenes 4 --cameras 1 --frames 4 --height 768 --width 1024 \
        --keep /tmp/raw_1024      # then: python bench/bench_data.py --raw /tmp/raw_1024
"""

from __future__ import annotations

import argparse
import http.server
import logging
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from depthcore.data.hypersim.download import DownloadConfig, download, select_members
from depthcore.data.hypersim.preprocess import PreprocessConfig, list_scenes, preprocess
from depthcore.data.hypersim.reader import find_frames
from depthcore.data.hypersim.zipremote import read_central_directory
from depthcore.synth.hypersim import SynthConfig, generate_hypersim

_RANGE = re.compile(r"bytes=(\d+)-(\d+)?")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """GET with a single ``Range: bytes=a-b`` (206) or without one (200); counts bytes sent."""

    root: Path
    sent: list[int]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        m = _RANGE.fullmatch(self.headers.get("Range", ""))
        start, stop = 0, size
        if m:
            start = int(m.group(1))
            stop = min(size, int(m.group(2)) + 1) if m.group(2) else size
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(stop - start)
        self.send_response(206 if m else 200)
        if m:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.sent.append(len(body))

    def log_message(self, *args: object) -> None:
        """Silence the per-request stderr line."""


@contextmanager
def _serve(root: Path) -> Iterator[tuple[str, list[int]]]:
    """An HTTP range server for ``root`` on a free loopback port, and its byte log."""
    sent: list[int] = []
    handler = type("Handler", (_RangeHandler,), {"root": root, "sent": sent})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sent
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _member_bytes(zips: list[Path]) -> dict[str, int]:
    """Compressed bytes per member kind over all zips, and the bytes the downloader wants."""
    by_kind: dict[str, int] = {}
    wanted = 0
    for z in zips:
        blob = z.read_bytes()
        members = read_central_directory(lambda a, b, blob=blob: blob[a:b], len(blob), str(z))
        wanted += sum(m.compressed_size for m in select_members(members, z.stem, DownloadConfig()))
        for m in members:
            kind = m.name.rsplit("/", 1)[-1].split(".", 2)[-1] if "frame." in m.name else "other"
            by_kind[kind] = by_kind.get(kind, 0) + m.compressed_size
    by_kind["(wanted)"] = wanted
    return by_kind


def _timed_download(source: str, out: Path, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    result = download(DownloadConfig(source=source, out_dir=str(out), workers=workers))
    return time.perf_counter() - start, result.bytes_transferred


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished (reaped) children, e.g. workers."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _h5py_rate(raw: Path) -> tuple[int, float, float]:
    """Frames, wall and CPU seconds to open and fully read colour, depth and entity of all."""
    frames = [f for scene in list_scenes(raw) for f in find_frames(raw, scene)]
    start, cpu = time.perf_counter(), _cpu_seconds()
    for f in frames:
        for path in (f.color_path(raw), f.depth_path(raw), f.entity_path(raw)):
            with h5py.File(path, "r") as h5:
                h5["dataset"][()]
    return len(frames), time.perf_counter() - start, _cpu_seconds() - cpu


def preprocess_rates(raw: Path, tmp: Path, args: argparse.Namespace) -> None:
    """Print the h5py read rate and preprocessing rate per worker count (medians).

    Wall rates and CPU rates (frames per CPU second, workers included): on a shared
    machine the CPU figure is the robust one; wall rates show the gain from workers.
    """
    reads = [_h5py_rate(raw) for _ in range(args.repeats)]
    n = reads[0][0]
    read_wall = n / statistics.median(wall for _, wall, _ in reads)
    read_cpu = n / statistics.median(cpu for _, _, cpu in reads)
    print(
        f"h5py read (colour+depth+entity): {n} frames, {read_wall:.1f} frames/s wall, "
        f"{read_cpu:.1f} frames per CPU s"
    )
    for workers in args.preprocess_workers:
        walls, cpus = [], []
        for rep in range(args.repeats):
            cfg = PreprocessConfig(
                in_dir=str(raw),
                out_dir=str(tmp / f"processed_{workers}_{rep}"),
                resolution=tuple(args.resolution),
                workers=workers,
            )
            start, cpu = time.perf_counter(), _cpu_seconds()
            stats = preprocess(cfg)
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu_seconds() - cpu)
            shutil.rmtree(cfg.out_dir)
        wall_rate, cpu_rate = n / statistics.median(walls), n / statistics.median(cpus)
        print(
            f"preprocess workers={workers}: {n} frames ({len(stats)} kept), "
            f"{wall_rate:.1f} frames/s wall = {wall_rate / read_wall:.2f}x the read rate, "
            f"{cpu_rate:.1f} frames per CPU s = {cpu_rate / read_cpu:.2f}x (wall runs "
            + " ".join(f"{r:.2f}" for r in walls)
            + " s; tables and shard assembly included)"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--frames", type=int, default=6, help="frames per camera")
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--resolution", type=int, nargs=2, default=(64, 64), help="preprocess H W")
    ap.add_argument("--workers", type=int, default=2, help="render and download workers")
    ap.add_argument("--preprocess-workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--raw", type=Path, default=None, help="measure this download folder")
    ap.add_argument("--keep", type=Path, default=None, help="copy the download folder here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp_name:
        tmp = Path(tmp_name)
        if args.raw is not None:
            preprocess_rates(args.raw, tmp, args)
            return
        synth = SynthConfig(
            out_dir=str(tmp / "src"),
            n_scenes=args.scenes,
            cameras_per_scene=args.cameras,
            frames_per_camera=args.frames,
            height=args.height,
            width=args.width,
            val_scenes=1,
            test_scenes=1 if args.scenes > 2 else 0,
            lens_shift_scenes=min(2, args.scenes),
            window_views=0,
            flat_views=0,
            excluded_frames=0,
            workers=args.workers,
        )
        start = time.perf_counter()
        zips = generate_hypersim(tmp / "src", synth)
        n_frames = args.scenes * args.cameras * args.frames
        total = sum(z.stat().st_size for z in zips)
        print(
            f"synth: {len(zips)} scenes, {n_frames} frames at {args.height}x{args.width}, "
            f"{total / 1e6:.2f} MB of zips in {time.perf_counter() - start:.1f} s"
        )
        kinds = _member_bytes(zips)
        print(
            "  compressed bytes by member: "
            + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(kinds.items()))
        )

        secs, moved = _timed_download(f"file://{tmp / 'src'}", tmp / "raw_file", args.workers)
        print(
            f"download file://: {moved / 1e6:.2f} MB member data of {total / 1e6:.2f} MB zips "
            f"(ratio {moved / total:.3f}), {secs:.2f} s, {moved / 1e6 / secs:.1f} MB/s"
        )
        with _serve(tmp / "src") as (url, sent):
            secs, moved = _timed_download(url, tmp / "raw_http", args.workers)
        served = sum(sent)
        print(
            f"download http (loopback, Range): server sent {served / 1e6:.2f} MB "
            f"({moved / 1e6:.2f} MB member data) of {total / 1e6:.2f} MB zips "
            f"(ratio {served / total:.3f}), {len(sent)} requests, {secs:.2f} s, "
            f"{served / 1e6 / secs:.1f} MB/s"
        )
        if args.keep is not None:
            shutil.copytree(tmp / "raw_file", args.keep, dirs_exist_ok=True)
        preprocess_rates(tmp / "raw_file", tmp, args)


if __name__ == "__main__":
    main()
