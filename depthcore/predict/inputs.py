"""What ``depthart predict`` reads and where it writes: files, folders and globs expanded
into jobs (one image, one output stem each), and the checks that keep outputs away from
inputs: a rerun never predicts its own outputs, and no output overwrites an input image.
"""

from __future__ import annotations

import argparse
import glob
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from depthcore.io import UnsafeOutputError, overlap

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class Job:
    """One input image and the stem (relative to OUTDIR) its outputs are written under."""

    source: Path
    stem: Path
    found: bool = False  # found in a folder or by a glob (not named on the command line)


def expand_inputs(inputs: Sequence[str], recursive: bool) -> tuple[list[Job], list[str]]:
    """Files, folders, globs -> jobs (sorted, unique stems) and one failure line per bad input."""
    sources: list[tuple[Path, Path, bool]] = []  # (file, stem relative to OUTDIR, found)
    failures: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
            files = [p for p in files if p.is_file()]
            if not files:
                failures.append(f"{path}: folder has no images (.png/.jpg/...)")
            sources += [(p, p.relative_to(path).with_suffix(""), True) for p in files]
        elif path.exists():
            sources.append((path, Path(path.stem), False))
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not matches:
                failures.append(f"{text}: pattern matches no files")
            base = _glob_base(text)
            sources += [(p, p.relative_to(base).with_suffix(""), True) for p in matches]
        else:
            failures.append(f"{path}: no such file or directory")
    jobs: list[Job] = []
    seen: set[Path] = set()
    files: set[Path] = set()
    for source, stem, found in sources:
        if source.resolve() in files:
            continue  # the same file given twice
        files.add(source.resolve())
        if stem in seen:  # x.png and x.jpg side by side: keep both, name by extension
            stem = stem.with_name(f"{stem.name}_{source.suffix.lstrip('.').lower()}")
        base, n = stem, 2
        while stem in seen:  # two inputs with the same tree: number the later ones
            stem, n = base.with_name(f"{base.name}_{n}"), n + 1
        seen.add(stem)
        jobs.append(Job(source, stem, found))
    return jobs, failures


def drop_outputs_dir(
    jobs: list[Job], out_dir: Path, inputs: Sequence[str]
) -> tuple[list[Job], int]:
    """The jobs whose image is not inside ``out_dir``, and how many were dropped.

    A rerun of ``predict photos -r -o photos/depth`` must not predict depth for its own
    outputs; images named on the command line are always kept. An ``out_dir`` equal to
    an input folder or a glob's folder (outputs mixed with the photos) is refused
    (:class:`UnsafeOutputError`).
    """
    for text in inputs:
        path = Path(text)
        base = path if path.is_dir() else _glob_base(text) if glob.has_magic(text) else None
        if base is not None and overlap(out_dir, base) == "is":
            raise UnsafeOutputError(
                f"-o {out_dir} is the input folder of {text}: outputs would mix with (and "
                "later be read as) the photos; choose another output folder"
            )
    kept = [job for job in jobs if not job.found or overlap(job.source, out_dir) is None]
    return kept, len(jobs) - len(kept)


def output_files(stem: Path, outputs: set[str], args: argparse.Namespace) -> list[Path]:
    """Every file :func:`write_outputs` may write for ``stem``."""
    names = {
        "npy": ["_depth.npy"],
        "png": ["_depth.png"],
        "color": ["_depth_color.png"],
        "ply": [".ply"],
    }
    suffixes = [s for o in sorted(outputs) for s in names[o]]
    suffixes += ["_scales.png"] if args.scales else []
    suffixes += ["_std.npy", "_std.png"] if args.samples > 0 else []
    return [stem.with_name(f"{stem.name}{s}") for s in suffixes]


def _glob_base(pattern: str) -> Path:
    """The folder a glob's matches are mirrored from: its leading parts without wildcards."""
    parts = Path(pattern).parts
    fixed = list(itertools.takewhile(lambda part: not glob.has_magic(part), parts))
    return Path(*fixed) if fixed else Path(".")
