"""A parameter sweep as DVC experiments, tabulated: the grid's cartesian product is queued
with ``dvc exp run --queue -S key=value``, run with ``dvc queue start``, and every point's
evaluate AbsRel per benchmark and first/last-scale val AbsRel read back from
``dvc exp show --json`` into one markdown table::

    python -m bench.learning.sweep --grid train.lr=1e-3,3e-3 train.tf_warmup_steps=0,250
    python -m bench.learning.sweep --grid train.lr=1e-3,3e-3 --collect-only   # table only

The same experiments stay in DVC: ``dvc exp show``, ``dvc exp diff sweep-1 sweep-2``,
``dvc exp apply sweep-3`` (then ``dvc repro`` / commit) work on them as on any other.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.learning import dvc_exp
from depthcore.io import write_text_atomic

BENCHMARKS = ("eth3d", "ibims", "nyu", "tum")


def sweep_names(prefix: str, n: int) -> list[str]:
    """``prefix-1 .. prefix-n``: short, valid git ref names whatever the values are."""
    return [f"{prefix}-{i}" for i in range(1, n + 1)]


def sweep_table(
    exps: list[dvc_exp.Experiment], keys: list[str], objectives: list[str]
) -> tuple[list[str], list[list[str]]]:
    """(header, rows): per experiment its swept params, then per objective lsq AbsRel on
    each benchmark and val AbsRel at the first and last scale (from the scales stage)."""
    header = ["experiment", *keys]
    for obj in objectives:
        header += [f"{obj} {b}" for b in BENCHMARKS] + [f"{obj} scale first", f"{obj} scale last"]
    rows = []
    for exp in exps:
        row = [exp.name, *(str(exp.params.get(k, "?")) for k in keys)]
        for obj in objectives:
            row += [f"{dvc_exp.eval_metric(exp, obj, b, 'abs_rel'):.3f}" for b in BENCHMARKS]
            summary = dvc_exp.scales_summary(exp, obj)
            row += [f"{float(summary[k]):.3f}" for k in ("val_abs_rel_first_scale", "val_abs_rel")]
        rows.append(row)
    return header, rows


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)]) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--grid",
        nargs="+",
        required=True,
        metavar="KEY=V1,V2",
        help="params.yaml keys and the values to try; the cartesian product runs",
    )
    ap.add_argument("--objectives", nargs="+", default=list(dvc_exp.DEFAULT_OBJECTIVES))
    ap.add_argument(
        "--targets",
        nargs="+",
        default=None,
        help="dvc exp run targets (default: scales@ and evaluate@ each objective)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    dvc_exp.add_queue_options(ap, "sweep")
    args = ap.parse_args(argv)
    repo = Path.cwd()
    try:
        points = dvc_exp.parse_grid(args.grid, repo / "params.yaml")
    except dvc_exp.GridError as exc:
        ap.error(str(exc))
    names = sweep_names(args.name_prefix, len(points))
    if not args.collect_only:
        targets = args.targets or dvc_exp.stage_targets(args.objectives)
        dvc_exp.queue(list(zip(names, points, strict=True)), targets, repo)
        waited = dvc_exp.run_queue(names, repo, args.jobs, args.timeout_h * 3600)
        print(f"sweep: {len(names)} experiments in {waited / 60:.1f} min")
    found = dvc_exp.show(names, repo)
    header, rows = sweep_table([found[n] for n in names], list(points[0]), args.objectives)
    table = to_markdown(header, rows)
    print(table)
    if args.out:
        write_text_atomic(args.out, table)


if __name__ == "__main__":
    try:
        main()
    except dvc_exp.ExperimentError as exc:
        sys.exit(f"sweep: {exc}")
