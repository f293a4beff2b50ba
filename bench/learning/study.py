"""The seed study: DepthART vs VAR teacher forcing over several seeds, as DVC experiments.

One command (``make study``, or ``python -m bench.learning.study``) queues one DVC
experiment per seed (``dvc exp run --queue --name study-seedN -S train.seed=N [-S ...]``,
reproducing train, scales and evaluate for both objectives with the pipeline's own stages),
runs the queue (``dvc queue start -j 1``), waits, reads every experiment back from
``dvc exp show --json`` and writes, under ``--out`` (default docs/learning):
``study.md`` (mean +- std over seeds per benchmark, the paired DepthART - VAR-TF
comparison over seeds x benchmarks, per-scale val AbsRel, the prefix ablation, the raw
per-seed numbers), ``study_scales.png`` (per-scale curves, mean +- std band per
objective) and ``study.json`` (everything the table was made from)::

    python -m bench.learning.study                               # seeds 0 1 2, params.yaml
    python -m bench.learning.study --seeds 0 1 2 3 --set train.steps=2000 \\
        --set train.tf_warmup_steps=1000                         # the longer profile
    python -m bench.learning.study --collect-only                # re-tabulate finished runs

The seed changes the transformer's init and batch order; the data, the tokenizer and the
feature cache are shared (restored from DVC's run cache after the first experiment).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import yaml

from bench.learning import dvc_exp
from bench.learning.study_stats import band, fmt, mean_std, paired
from depthcore.io import atomic_path, write_text_atomic

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"depthart": "DepthART", "var_tf": "VAR-TF", "regression": "regression"}

# Seconds on 2 free CPU cores for the embedded default (params.yaml comments, DESIGN.md):
# a training step at batch 8, and per experiment the evaluate (4 benchmarks) and scales
# stages per objective plus the experiment's own overhead (temp copy, run-cache checkout,
# list_source + download).
STEP_S_AT_BATCH8 = {"depthart": 0.45, "var_tf": 0.28, "regression": 0.3}
EVAL_S, SCALES_S, EXP_OVERHEAD_S = 90.0, 45.0, 60.0
UPSTREAM_COLD_S = 600.0  # synth .. features when no earlier `dvc repro` filled the run cache


def estimate_s(
    params: dict[str, Any], overrides: dict[str, Any], seeds: int, objectives: list[str]
) -> tuple[float, float]:
    """(expected seconds with the upstream stages in the run cache, extra seconds if they
    must run first). A rough model: steps x per-step cost scaled by batch size."""
    train = dict(params["train"])
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section == "train":
            train[name] = value
    per_seed = EXP_OVERHEAD_S
    for obj in objectives:
        step_s = STEP_S_AT_BATCH8.get(obj, 0.45) * float(train["batch_size"]) / 8
        per_seed += int(train["steps"]) * step_s + EVAL_S + SCALES_S
    return seeds * per_seed, UPSTREAM_COLD_S


def collect(
    exps: dict[int, dvc_exp.Experiment], objectives: list[str], repo: Path
) -> list[dict[str, Any]]:
    """Per seed and objective: lsq AbsRel / delta1 per benchmark, the per-scale val curve,
    the first/last-scale val AbsRel and the prefix ablation."""
    records = []
    for seed, exp in sorted(exps.items()):
        per_obj: dict[str, Any] = {}
        for obj in objectives:
            benches = sorted(exp.metrics.get(f"outputs/eval/{obj}/metrics.json", {}))
            if not benches:
                raise dvc_exp.ExperimentError(
                    f"experiment {exp.name}: no evaluate metrics for {obj}"
                )
            sides, curve = dvc_exp.scale_curve(exp, obj, repo)
            summary = dvc_exp.scales_summary(exp, obj)
            per_obj[obj] = {
                "eval": {
                    b: {m: dvc_exp.eval_metric(exp, obj, b, m) for m in ("abs_rel", "delta1")}
                    for b in benches
                },
                "patch_nums": sides,
                "scales_abs_rel": curve,
                "val_first": float(summary["val_abs_rel_first_scale"]),
                "val_last": float(summary["val_abs_rel"]),
                "ablation": summary.get("prefix_ablation", {}),
            }
        records.append(
            {"seed": seed, "experiment": exp.name, "rev": exp.rev, "objectives": per_obj}
        )
    return records


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def render(records: list[dict[str, Any]], objectives: list[str], meta: dict[str, Any]) -> str:
    """The study's markdown: every number computed from ``records``."""
    seeds = [r["seed"] for r in records]
    benches = sorted(records[0]["objectives"][objectives[0]]["eval"])
    lab = [LABELS.get(o, o) for o in objectives]

    def vals(obj: str, get: Any) -> list[float]:
        return [get(r["objectives"][obj]) for r in records]

    out = [
        f"# Seed study: {' vs '.join(lab)}",
        "",
        "Written by `python -m bench.learning.study` (do not edit by hand).",
        "",
        f"- command: `{meta['command']}`",
        f"- commit: `{meta['commit']}`; params.yaml overrides: {meta['overrides'] or 'none'}",
        f"- seeds: {' '.join(map(str, seeds))} (one DVC experiment each: "
        + ", ".join(f"`{r['experiment']}`" for r in records)
        + ")",
        f"- wall time: {meta['wall']}; written {meta['date']}",
        "",
        f"## Benchmarks (lsq alignment, mean ± std over {len(seeds)} seeds)",
        "",
    ]
    header = ["benchmark", *(f"{x} AbsRel" for x in lab), *(f"{x} δ1" for x in lab)]
    rows = []
    for b in benches:
        cells = [
            fmt(*mean_std(vals(o, lambda d, b=b: d["eval"][b]["abs_rel"]))) for o in objectives
        ]
        cells += [
            fmt(*mean_std(vals(o, lambda d, b=b: d["eval"][b]["delta1"]))) for o in objectives
        ]
        rows.append([b, *cells])
    out += [*_table(header, rows), ""]

    if len(objectives) >= 2:
        a, b_ = objectives[0], objectives[1]
        out += [
            f"## Paired comparison: {lab[0]} - {lab[1]}",
            "",
            f"Difference per seed (negative AbsRel / positive δ1 = {lab[0]} better); "
            f"'wins' counts the pairs {lab[0]} wins; p: two-sided paired t-test (pairs within "
            "one seed are not independent: a guide, not a proof).",
            "",
        ]
        rows = []
        for metric, lower in (("abs_rel", True), ("delta1", False)):
            for bench in [*benches, "all"]:
                names = benches if bench == "all" else [bench]
                xs = [r["objectives"][a]["eval"][n][metric] for r in records for n in names]
                ys = [r["objectives"][b_]["eval"][n][metric] for r in records for n in names]
                pr = paired(xs, ys, lower_is_better=lower)
                rows.append(
                    [
                        metric,
                        bench,
                        str(pr.n),
                        fmt(pr.mean_diff, pr.std_diff, 4),
                        f"{pr.wins_a}/{pr.n}",
                        _p(pr.p),
                    ]
                )
        xs, ys = vals(a, lambda d: d["val_last"]), vals(b_, lambda d: d["val_last"])
        pr = paired(xs, ys)
        rows.append(
            [
                "val AbsRel, last scale",
                "val",
                str(pr.n),
                fmt(pr.mean_diff, pr.std_diff, 4),
                f"{pr.wins_a}/{pr.n}",
                _p(pr.p),
            ]
        )
        out += [*_table(["metric", "benchmark", "pairs", "mean diff ± std", "wins", "p"], rows), ""]

    first = records[0]["objectives"][objectives[0]]["patch_nums"]
    out += ["## Per-scale val AbsRel (mean ± std); ![curves](study_scales.png)", ""]
    rows = []
    for o, name in zip(objectives, lab, strict=True):
        mean_K, std_K = band(vals(o, lambda d: d["scales_abs_rel"]))
        drop = [(d["val_first"] - d["val_last"]) / d["val_first"] for d in vals(o, lambda d: d)]
        rows.append(
            [
                name,
                *(fmt(m, s) for m, s in zip(mean_K, std_K, strict=True)),
                fmt(*mean_std([100 * x for x in drop]), 1) + " %",
            ]
        )
    out += [*_table(["objective", *(f"{p}x{p}" for p in first), "first -> last drop"], rows), ""]

    out += ["## Prefix ablation (final-scale val AbsRel, mean ± std)", ""]
    rows = []
    keys = ("abs_rel_real", "abs_rel_zero", "abs_rel_other", "pred_spread")
    for o, name in zip(objectives, lab, strict=True):
        if all(k in r["objectives"][o]["ablation"] for r in records for k in keys):
            rows.append(
                [name, *(fmt(*mean_std(vals(o, lambda d, k=k: d["ablation"][k]))) for k in keys)]
            )
    out += [*_table(["objective", "real prefix", "zeroed", "other image", "pred spread"], rows), ""]

    out += ["## Per seed", ""]
    rows = [
        [str(r["seed"]), LABELS.get(o, o),
         *(f"{r['objectives'][o]['eval'][b]['abs_rel']:.3f}" for b in benches),
         f"{r['objectives'][o]['val_first']:.3f} -> {r['objectives'][o]['val_last']:.3f}"]
        for r in records for o in objectives
    ]  # fmt: skip
    out += [
        *_table(
            ["seed", "objective", *(f"{b} AbsRel" for b in benches), "val first -> last"], rows
        ),
        "",
    ]
    return "\n".join(out)


def plot(records: list[dict[str, Any]], objectives: list[str], png: Path) -> None:
    """Per-scale val AbsRel: each seed thin, the mean bold with a +- std band."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sides = records[0]["objectives"][objectives[0]]["patch_nums"]
    x = list(range(len(sides)))
    for i, obj in enumerate(objectives):
        color = f"C{i}"
        curves = [r["objectives"][obj]["scales_abs_rel"] for r in records]
        for curve in curves:
            ax.plot(x, curve, color=color, lw=0.7, alpha=0.4)
        mean_K, std_K = band(curves)
        lo = [m - (0 if math.isnan(s) else s) for m, s in zip(mean_K, std_K, strict=True)]
        hi = [m + (0 if math.isnan(s) else s) for m, s in zip(mean_K, std_K, strict=True)]
        ax.fill_between(x, lo, hi, color=color, alpha=0.2)
        ax.plot(
            x,
            mean_K,
            color=color,
            lw=2,
            marker="o",
            label=f"{LABELS.get(obj, obj)} (n={len(curves)})",
        )
    ax.set_xticks(x, [f"{p}x{p}" for p in sides])
    ax.set_xlabel("scale (coarse to fine)")
    ax.set_ylabel("val AbsRel (lsq)")
    ax.set_title("Per-scale val AbsRel: mean ± std over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _previous_wall(study_json: Path) -> str:
    """``--collect-only`` re-tabulates: keep the wall time the earlier run measured."""
    if study_json.is_file():
        return str(json.loads(study_json.read_text())["meta"]["wall"])
    return "not measured (--collect-only)"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params.yaml override for every seed, e.g. train.steps=2000",
    )
    ap.add_argument("--objectives", nargs="+", default=list(dvc_exp.DEFAULT_OBJECTIVES))
    ap.add_argument("--out", type=Path, default=Path("docs/learning"))
    dvc_exp.add_queue_options(ap, "study")
    args = ap.parse_args(argv)
    repo = Path.cwd()
    params_file = repo / "params.yaml"
    try:
        overrides = dvc_exp.parse_sets(args.set, params_file)
    except dvc_exp.GridError as exc:
        ap.error(str(exc))
    names = {seed: f"{args.name_prefix}-seed{seed}" for seed in args.seeds}
    expected, cold = estimate_s(
        yaml.safe_load(params_file.read_text()), overrides, len(args.seeds), args.objectives
    )
    print(f"study: {len(args.seeds)} seeds x {args.objectives}; estimated wall time on 2 free "
          f"cores {expected / 60:.0f} min (+ up to {cold / 60:.0f} min if the data, tokenizer "
          "and features stages are not yet in DVC's run cache)", flush=True)  # fmt: skip
    wall = _previous_wall(args.out / "study.json")
    if not args.collect_only:
        points = [(names[s], {"train.seed": s, **overrides}) for s in args.seeds]
        dvc_exp.queue(points, dvc_exp.stage_targets(args.objectives), repo)
        waited = dvc_exp.run_queue(list(names.values()), repo, args.jobs, args.timeout_h * 3600)
        wall = f"{waited / 60:.1f} min measured (estimate {expected / 60:.0f} min)"
        print(f"study: experiments finished in {waited / 60:.1f} min", flush=True)
    by_name = dvc_exp.show(list(names.values()), repo)
    exps = {seed: by_name[name] for seed, name in names.items()}
    records = collect(exps, args.objectives, repo)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    meta = {
        "command": " ".join(
            ["python -m bench.learning.study", *(argv if argv is not None else sys.argv[1:])]
        ),
        "commit": commit,
        "overrides": ", ".join(f"`{k}={v}`" for k, v in overrides.items()),
        "wall": wall,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    text = render(records, args.objectives, meta)
    write_text_atomic(args.out / "study.md", text)
    write_text_atomic(
        args.out / "study.json", json.dumps({"meta": meta, "records": records}, indent=1)
    )
    plot(records, args.objectives, args.out / "study_scales.png")
    print(text)
    print(
        f"wrote {args.out / 'study.md'}, {args.out / 'study_scales.png'}, {args.out / 'study.json'}"
    )


if __name__ == "__main__":
    try:
        main()
    except dvc_exp.ExperimentError as exc:
        sys.exit(f"study: {exc}")
