"""Speed of the Hypersim data path: figures to read, not assertions.

Generates a few synthetic Hypersim scene zips in a temporary folder, then prints

* the selective download from a ``file://`` source and from a loopback HTTP server
  with ``Range`` support: bytes fetched against total zip bytes (the selective ratio;
  for HTTP the bytes the server actually sent, central directories and local headers
  included) and MB/s;
* the preprocessing throughput (frames per CPU second and per wall second, with
  ``--preprocess-workers``, default 1 2 4 worker processes) next to the rate of just
  opening and reading the colour, depth and entity datasets with h5py (the baseline)
  and with depthcore's reader, all timed in interleaved rounds; ratios to the h5py
  read of the same round, medians of ``--repeats`` rounds.

``--raw DIR [DIR ...]`` skips the synth and download steps and measures existing
download folders one after the other (e.g. frames at Hypersim's real 1024 x 768,
which take minutes to render, and frames at the default size).

The synthetic zips hold colour, tone-mapped preview, depth, entity id and camera
normals per frame; a real Hypersim zip holds about thirty members per frame (the
other render passes, positions, semantics, more previews), so the ratio printed here
is an upper bound of what a real scene gives.

    python bench/bench_data.py --scenes 4 --cameras 2 --frames 6 --height 96 --width 128
    python bench/bench_data.py --scenes 4 --cameras 1 --frames 4 --height 768 --width 1024 \
        --keep /tmp/raw_1024      # then: python bench/bench_data.py --raw /tmp/raw_1024 /tmp/raw
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: tests.helpers

from depthcore.data.hypersim.download import DownloadConfig, download, select_members
from depthcore.data.hypersim.plan import list_scenes
from depthcore.data.hypersim.preprocess import PreprocessConfig, preprocess
from depthcore.data.hypersim.reader import (
    FrameId,
    find_frames,
    read_color,
    read_distance,
    read_entity,
)
from depthcore.data.hypersim.zipremote import read_central_directory
from depthcore.synth.hypersim import SynthConfig, generate_hypersim
from tests.helpers.net import range_server


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
    """CPU seconds of this process and of its finished (reaped) children, e.g. workers.

    getrusage counts in microseconds (os.times in 10 ms clock ticks: too coarse here).
    """
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _all_frames(raw: Path) -> list[FrameId]:
    return [f for scene in list_scenes(raw) for f in find_frames(raw, scene)]


def _h5py_read(raw: Path) -> None:
    """The baseline: open and fully read colour, depth and entity of every frame (h5py File)."""
    for f in _all_frames(raw):
        for path in (f.color_path(raw), f.depth_path(raw), f.entity_path(raw)):
            with h5py.File(path, "r") as h5:
                h5["dataset"][()]


def _reader_read(raw: Path) -> None:
    """The same reads through depthcore's reader (low-level h5py, checks included)."""
    for f in _all_frames(raw):
        read_color(f.color_path(raw))
        read_distance(f.depth_path(raw))
        read_entity(f.entity_path(raw))


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (worker processes included) of one call."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    fn()
    return time.perf_counter() - start, _cpu_seconds() - cpu


def preprocess_rates(raw: Path, tmp: Path, args: argparse.Namespace) -> None:
    """Print read and preprocessing rates of one download folder, timed in interleaved rounds.

    Each round reads every frame with h5py (the baseline), then with depthcore's reader,
    then preprocesses with each worker count, so all of them see the same machine load.
    Rates are frames per wall second and per CPU second (workers included): on a shared
    machine the CPU figure is the robust one; the wall rate shows the gain from workers.
    Ratios are against the h5py read of the same round; medians over rounds.
    """
    frames = _all_frames(raw)
    n = len(frames)
    with h5py.File(frames[0].color_path(raw), "r") as h5:
        height, width = h5["dataset"].shape[:2]
    names = ["h5py read", "reader read"] + [
        f"preprocess workers={w}" for w in args.preprocess_workers
    ]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    kept = 0
    for rep in range(args.repeats):
        runs["h5py read"].append(_timed(lambda: _h5py_read(raw)))
        runs["reader read"].append(_timed(lambda: _reader_read(raw)))
        for workers in args.preprocess_workers:
            cfg = PreprocessConfig(
                in_dir=str(raw),
                out_dir=str(tmp / f"processed_{workers}_{rep}"),
                resolution=tuple(args.resolution),
                workers=workers,
            )
            runs[f"preprocess workers={workers}"].append(_timed(lambda cfg=cfg: preprocess(cfg)))
            kept = len(pd.read_csv(Path(cfg.out_dir) / "stats.csv"))
            shutil.rmtree(cfg.out_dir)
    print(
        f"{raw}: {n} frames at {height}x{width} -> {args.resolution[0]}x{args.resolution[1]} "
        f"({kept} kept), median of {args.repeats} interleaved rounds"
    )
    base = runs["h5py read"]
    for name in names:
        wall = n / statistics.median(w for w, _ in runs[name])
        cpu = n / statistics.median(c for _, c in runs[name])
        x_cpu = [b[1] / r[1] for b, r in zip(base, runs[name], strict=True)]
        x_wall = [b[0] / r[0] for b, r in zip(base, runs[name], strict=True)]
        print(
            f"  {name:22s}: {cpu:7.1f} frames/CPU s = {statistics.median(x_cpu):.2f}x read, "
            f"{wall:7.1f} frames/s wall = {statistics.median(x_wall):.2f}x read "
            f"(rounds, x read CPU: {' '.join(f'{x:.2f}' for x in x_cpu)}; "
            f"wall: {' '.join(f'{x:.2f}' for x in x_wall)})"
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
    ap.add_argument("--raw", type=Path, nargs="+", default=None, help="measure these folders")
    ap.add_argument("--keep", type=Path, default=None, help="copy the download folder here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp_name:
        tmp = Path(tmp_name)
        if args.raw is not None:
            for raw in args.raw:
                preprocess_rates(raw, tmp, args)
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
        with range_server(tmp / "src") as (url, log):
            secs, moved = _timed_download(url, tmp / "raw_http", args.workers)
        served = log.bytes_sent
        print(
            f"download http (loopback, Range): server sent {served / 1e6:.2f} MB "
            f"({moved / 1e6:.2f} MB member data) of {total / 1e6:.2f} MB zips "
            f"(ratio {served / total:.3f}), {len(log.served)} requests, {secs:.2f} s, "
            f"{served / 1e6 / secs:.1f} MB/s"
        )
        if args.keep is not None:
            shutil.copytree(tmp / "raw_file", args.keep, dirs_exist_ok=True)
        preprocess_rates(tmp / "raw_file", tmp, args)


if __name__ == "__main__":
    main()
