"""A timed `dvc repro`: seconds per stage and the margins over the content-free references.

Runs ``dvc repro`` in the current repository (a fresh clone for a cold run), stamps every
"Running stage" line with the wall clock, and prints the seconds each stage took, the wall
time, and, per trained model and benchmark, how much lower its AbsRel (lsq) is than the
best content-free reference's (the bars of issues 24 and 28: >= 25 % / >= 30 %)::

    python -m bench.learning.repro_timing --out docs/learning/runs/repro_fp32.json --fp32-cpu

``--fp32-cpu`` runs the stages as on a CPU without native bf16 (the common case):
``ONEDNN_MAX_CPU_ISA=AVX2`` and ``ATEN_CPU_CAPABILITY=avx2`` cap the kernels at AVX2, and
``precision: auto`` then resolves to fp32 (depthcore.training.precision.native_bf16).
``--margins-only`` reads the margins of a finished run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STAGE_RE = re.compile(r"^Running stage '([^']+)':")
FP32_CPU_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def stage_seconds(events: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds per stage from (time, line) pairs: a stage lasts from its "Running stage"
    line to the next one (or ``end``), so DVC's own bookkeeping counts with its stage."""
    starts = [(t, m.group(1)) for t, line in events if (m := STAGE_RE.match(line))]
    out: dict[str, float] = {}
    for i, (t, name) in enumerate(starts):
        nxt = starts[i + 1][0] if i + 1 < len(starts) else end
        out[name] = round(nxt - t, 1)
    return out


def margins(eval_dir: Path, alignment: str = "lsq") -> dict[str, dict[str, float]]:
    """Model -> benchmark -> AbsRel improvement in % over the best reference there."""
    metrics = {p.parent.name: json.loads(p.read_text()) for p in eval_dir.glob("*/metrics.json")}
    refs = {k: v for k, v in metrics.items() if k.startswith("reference_")}
    if not refs:
        raise SystemExit(f"{eval_dir}: no reference_*/metrics.json (run evaluate_reference)")
    out: dict[str, dict[str, float]] = {}
    for model, per_bench in sorted(metrics.items()):
        if model in refs:
            continue
        out[model] = {}
        for bench, by_align in sorted(per_bench.items()):
            if not isinstance(by_align, dict) or alignment not in by_align:
                continue
            best = min(r[bench][alignment]["abs_rel"] for r in refs.values() if bench in r)
            out[model][bench] = round(100 * (1 - by_align[alignment]["abs_rel"] / best), 1)
    return out


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    ap.add_argument("--fp32-cpu", action="store_true", help="run as a CPU without native bf16")
    ap.add_argument("--margins-only", action="store_true")
    ap.add_argument("--eval-dir", type=Path, default=Path("outputs/eval"))
    args = ap.parse_args(argv)
    record: dict[str, Any] = {"cpu": cpu_name(), "cores": os.cpu_count(),
                              "fp32_cpu": args.fp32_cpu}  # fmt: skip
    if not args.margins_only:
        env = {**os.environ, **(FP32_CPU_ENV if args.fp32_cpu else {})}
        events: list[tuple[float, str]] = []
        start = time.monotonic()
        proc = subprocess.Popen(["dvc", "repro"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, bufsize=1)  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            events.append((time.monotonic() - start, line))
            sys.stdout.write(line)
        rc = proc.wait()
        wall = time.monotonic() - start
        if rc:
            raise SystemExit(f"dvc repro failed (exit {rc}) after {wall:.0f} s")
        record |= {"wall_s": round(wall, 1), "stages_s": stage_seconds(events, wall)}
        for name, secs in record["stages_s"].items():
            print(f"{name:40s} {secs:7.1f} s")
        print(f"{'wall':40s} {wall:7.1f} s ({wall / 60:.1f} min)")
    record["margins_pct"] = margins(args.eval_dir)
    for model, per_bench in record["margins_pct"].items():
        cells = "  ".join(f"{b} {v:+.1f} %" for b, v in per_bench.items())
        print(f"{model:12s} AbsRel below the best reference: {cells}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
