"""``depthart predict`` throughput on a folder of photos, start-up time separately.

Writes a random-weight checkpoint of ``--model`` (default ``tiny``) and ``--images``
JPEG photos (640 x 480, smooth random content) to a temporary folder, then prints

* start-up: a fresh interpreter importing ``depthcore.cli`` (wall seconds, median of
  ``--repeats``; ``import torch`` alone beside it), loading the checkpoint into a
  predictor in this process, and the first image out: ``depthart predict`` on one photo
  (all default outputs) in a fresh process, from start until its outputs exist and until
  the process has exited;
* throughput: the ``predict`` command run in-process on the whole folder (decode,
  fit, model, upsample, depth PNG/colour PNG/npy writes) at each ``--batch`` size with
  each ``--writers`` count (0: written serially after each batch; N: a pool of N writer
  threads while the next batch runs), images/s excluding the checkpoint load; and the
  predictor alone in fp32 and bf16.

    python bench/bench_predict.py --images 64 --batch 1 16 --threads 2 --writers 0 2
    python bench/bench_predict.py --images 32 --batch 16 --writers 2 --existing-files 30000
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from depthcore.cli import main as cli_main
from depthcore.cli.writer import DEFAULT_WRITERS
from depthcore.models import MODEL_CONFIGS, create_model, resolve_config
from depthcore.models.checkpoint import save_model
from depthcore.predict.images import load_rgb
from depthcore.predict.predictor import DepthPredictor


def write_photos(folder: Path, n: int, size: tuple[int, int] = (480, 640)) -> list[Path]:
    """``n`` smooth random JPEG photos of ``size`` (H, W)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, (size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((size[1], size[0]), Image.Resampling.BICUBIC)
        paths.append(folder / f"photo_{i:03d}.jpg")
        img.save(paths[-1], quality=90)
    return paths


def median_of(fn, repeats: int) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of ``repeats`` calls.

    CPU seconds are the robust figure on a shared machine (with one thread, the work).
    """
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def first_image_out(command: list[str], out: Path) -> tuple[float, float]:
    """(seconds until every default output of the one photo exists, seconds until exit).

    Files are written atomically (a temporary name, then a rename), so a final name that
    exists is a finished file. The exit comes later: a process that imported torch takes
    a while to tear down, which the user does not wait for to see the outputs.
    """
    suffixes = ("_depth.npy", "_depth.png", "_depth_color.png")
    start = time.perf_counter()
    proc = subprocess.Popen([*command, str(out)])
    done = None
    while proc.poll() is None:
        if done is None and out.is_dir():
            names = [p.name for p in out.iterdir()]
            if all(any(n.endswith(s) for n in names) for s in suffixes):
                done = time.perf_counter() - start
        time.sleep(0.002)
    ended = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"depthart predict failed with status {proc.returncode}")
    return (ended if done is None else done), ended


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument(
        "--existing-files",
        type=int,
        default=0,
        help="files already in each CLI output folder (a photo library's earlier outputs)",
    )
    parser.add_argument(
        "--writers",
        type=int,
        nargs="+",
        default=[0, DEFAULT_WRITERS],
        help="writer-thread counts of the CLI rows (0: the serial path)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp_name:
        tmp = Path(tmp_name)
        torch.manual_seed(0)
        vae, var = create_model(args.model)
        ckpt = tmp / f"{args.model}.safetensors"
        save_model(ckpt, vae, var, resolve_config(args.model), meta={"space": "sqrt_disparity"})
        photos = write_photos(tmp / "photos", args.images)
        print(
            f"model {args.model}, {args.images} JPEG photos 640x480, {args.threads} threads, "
            f"CPU, median of {args.repeats}"
        )
        import_s, _ = median_of(
            lambda: subprocess.run([sys.executable, "-c", "import depthcore.cli"], check=True),
            args.repeats,
        )
        torch_s, _ = median_of(
            lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True),
            args.repeats,
        )
        depthart = str(Path(sys.executable).with_name("depthart"))  # the installed command
        one = [depthart, "predict", str(photos[0]), "--model", str(ckpt), "--device", "cpu",
               "-q", "-o"]  # fmt: skip
        runs = itertools.count()  # a new output folder each run: nothing to skip or reuse
        firsts = [first_image_out(one, tmp / f"first_{next(runs)}") for _ in range(args.repeats)]
        out_s = statistics.median(f[0] for f in firsts)
        exit_s = statistics.median(f[1] for f in firsts)
        load_s = median_of(lambda: DepthPredictor.from_pretrained(ckpt), args.repeats)
        print(
            f"start-up: `python -c 'import depthcore.cli'` {import_s:.2f} s wall, start to "
            f"exit (`import torch` alone {torch_s:.2f} s), load checkpoint {load_s[0]:.2f} s wall, "
            f"{load_s[1]:.2f} s CPU; first image out: `depthart predict` on one photo, "
            f"{out_s:.2f} s from start to its last output file, {exit_s:.2f} s to exit"
        )
        print("| what | batch | images/s (wall) | images/s (CPU) | CPU s per image |")
        print("|---|---:|---:|---:|---:|")
        for B in args.batch:
            for writers in args.writers:
                out = tmp / f"out_{B}_{writers}"
                out.mkdir()
                for i in range(args.existing_files):
                    (out / f"earlier_{i:06d}_depth.png").write_bytes(b"")
                command = [
                    "predict", str(tmp / "photos"), "-o", str(out),
                    "--model", str(ckpt), "--batch-size", str(B), "--device", "cpu", "-q",
                    "--writers", str(writers),
                ]  # fmt: skip
                wall, cpu = median_of(lambda command=command: cli_main(command), args.repeats)
                wall, cpu = wall - load_s[0], cpu - load_s[1]
                how = f"{writers} writer threads" if writers else "serial writes"
                if args.existing_files:
                    how += f", {args.existing_files} files already in the folder"
                print(f"| `depthart predict` (fp32, all outputs, {how}) | {B} | "
                      f"{args.images / wall:.1f} | {args.images / cpu:.1f} | "
                      f"{cpu / args.images:.3f} |")  # fmt: skip
        images = [load_rgb(p)[0] for p in photos]
        for precision in args.precisions:
            kwargs = {} if precision == "fp32" else {"precision": precision}
            predictor = DepthPredictor.from_pretrained(ckpt, **kwargs)
            for B in args.batch:
                wall, cpu = median_of(
                    lambda B=B, p=predictor: p.predict_images(images, batch_size=B), args.repeats
                )
                print(f"| predictor.predict_images ({precision}) | {B} | "
                      f"{args.images / wall:.1f} | {args.images / cpu:.1f} | "
                      f"{cpu / args.images:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
