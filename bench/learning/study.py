"""The study: DepthART vs VAR teacher forcing over seeds, decodings and image-route
ablations, as DVC experiments (issue 24).

One command (``make study``, or ``python -m bench.learning.study``) queues DVC experiments
(``dvc exp run --queue --name NAME -S key=value ... scales@obj evaluate@obj``) and runs the
queue (``dvc queue start -j 1``):

- ``study-seedN``: the current default with ``train.seed = pretrain.seed = N`` (the shared
  warm-up is seeded with the trainings, so a seed is a whole independent run);
- the paper's decoding (``sample``: top-k/top-p, 5 samples averaged) is scored on each
  seed's trained models afterwards: the evaluate stage with ``evaluate.decoding=sample``
  over the experiment's checkpoints from the DVC cache (``outputs/study/``). (A DVC
  experiment per decoding would retrain: stages with persistent checkpoint folders get
  no run cache, so ``-S evaluate.decoding=sample`` reran pretrain and both trainings.)
- ``study-<variant>-seedN`` for the ablations (``tiny-nopixel``: no pixel path,
  ``tiny-nolocal``: no local prefix projection, ``tiny-frameonly``: the token prefix
  blanked, the pixel path kept; depthcore.models.configs) at the first ``--ablation-seeds``.

Then it reads every experiment back (metrics from ``dvc exp show --json``, the per-image
metrics and checkpoints from the shared DVC cache) and writes under ``--out`` (default
docs/learning):
``study.md`` (bench.learning.study_report), ``study_scales.png``, ``study_exposure.png``,
``study.json``; and it rewrites the answer block at the top of docs/learning.md::

    python -m bench.learning.study                       # seeds 0 1 2, ablations at 0 1
    python -m bench.learning.study --ablations           # no ablations
    python -m bench.learning.study --collect-only        # re-tabulate finished runs

The data, the tokenizer and the feature cache are shared (restored from DVC's run cache
after the first experiment).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import yaml

from bench.learning import dvc_exp
from bench.learning.study_report import LABELS, answer, render
from bench.learning.study_stats import band
from depthcore.io import atomic_path, write_text_atomic

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DECODINGS = ("expected", "sample")
ABLATIONS = ("nopixel", "nolocal", "frameonly")
ANSWER_BEGIN, ANSWER_END = "<!-- study:answer -->", "<!-- /study:answer -->"

# Seconds on 2 free CPU cores (bf16 where native) for the embedded default: a training
# step at batch 8, and per experiment the evaluate and scales stages per objective plus
# the experiment's own overhead (temp copy, run-cache checkout, list_source + download).
STEP_S_AT_BATCH8 = {"depthart": 0.3, "var_tf": 0.2, "regression": 0.15, "pretrain": 0.18}
EVAL_S, SAMPLE_EVAL_S, SCALES_S, EXP_OVERHEAD_S = 40.0, 120.0, 60.0, 60.0
UPSTREAM_COLD_S = 400.0  # synth .. features when no earlier `dvc repro` filled the run cache


def plan(
    seeds: list[int], ablations: list[str], ablation_seeds: int, prefix: str, model: str
) -> dict[str, dict[str, Any]]:
    """Experiment name -> {seed, variant, overrides}, in the order they run."""
    points: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        over = {"train.seed": seed, "pretrain.seed": seed}
        points[f"{prefix}-seed{seed}"] = {"seed": seed, "variant": "default", "overrides": over}
    for variant in ablations:
        name_model = f"{model}-{variant}"
        for seed in seeds[:ablation_seeds]:
            over = {"train.seed": seed, "pretrain.seed": seed,
                    "train.model": name_model, "pretrain.model": name_model}  # fmt: skip
            points[f"{prefix}-{variant}-seed{seed}"] = {
                "seed": seed, "variant": variant, "overrides": over
            }  # fmt: skip
    return points


def trend_points(key: str, values: list[Any], seed: int, prefix: str) -> dict[str, dict[str, Any]]:
    """The trend: the default at other values of one param (``train.steps``), first seed
    only; the default's own value is its seed run."""
    short = key.rsplit(".", 1)[-1]
    return {
        f"{prefix}-trend-{short}{value}-seed{seed}": {
            "seed": seed, "variant": "trend",
            "overrides": {"train.seed": seed, "pretrain.seed": seed, key: value},
        }
        for value in values
    }  # fmt: skip


def estimate_s(params: dict[str, Any], points: dict[str, dict[str, Any]]) -> float:
    """Expected seconds with the upstream stages in the run cache (a rough model)."""
    train, pre = params["train"], params["pretrain"]
    scale = float(train["batch_size"]) / 8
    total = 0.0
    for point in points.values():
        total += EXP_OVERHEAD_S + (2 * SAMPLE_EVAL_S if point["variant"] == "default" else 0)
        total += int(pre["steps"]) * STEP_S_AT_BATCH8["pretrain"] * float(pre["batch_size"]) / 8
        for obj in ("depthart", "var_tf"):
            total += int(train["steps"]) * STEP_S_AT_BATCH8[obj] * scale + EVAL_S + SCALES_S
    return total


def parse_per_image(text: str, where: str) -> dict[str, dict[str, Any]]:
    """benchmark -> image name -> {abs_rel, delta1} (lsq) of a per_image.csv's text."""
    out: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["alignment"] == "lsq":
            out.setdefault(row["benchmark"], {})[row["name"]] = {
                m: float(row[m]) for m in ("abs_rel", "delta1")
            }
    if not out:
        raise dvc_exp.ExperimentError(f"{where}: no lsq rows")
    return out


def _point_at_restored_benchmarks(
    params: dict[str, Any], exp: dvc_exp.Experiment, repo: Path, work: Path
) -> None:
    """Evaluate on the experiment's own benchmark files: the experiments generated them in
    temporary copies, so the workspace may have none (a fresh clone has not run the
    pipeline); they are rebuilt from the DVC cache under ``work/benchmarks``."""
    out_dir = Path(params["benchmarks"]["out_dir"])
    restored = dvc_exp.restore_cached_dir(exp, "benchmarks", out_dir.as_posix(), repo,
                                          work / "benchmarks")  # fmt: skip
    for spec in params["evaluate"]["benchmarks"].values():
        root = Path(spec["root"])
        if root.is_relative_to(out_dir):
            spec["root"] = str((restored / root.relative_to(out_dir)).resolve())


def evaluate_cached(
    exp: dvc_exp.Experiment, obj: str, decoding: str, repo: Path, work: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(metrics.json, per-image metrics) of the experiment's trained ``obj`` under another
    ``decoding``: the evaluate stage on its checkpoint from the DVC cache, with the
    experiment's own params but ``evaluate.decoding``. Kept under ``work`` next to the
    checkpoint's md5, so a rerun of the study reuses it."""
    md5 = dvc_exp.cached_md5(exp, f"train@{obj}", f"models/{obj}/model.safetensors", repo)
    out = work / exp.name / decoding / obj
    if not (out / "metrics.json").is_file() or (out / "model.md5").read_text() != md5:
        out.parent.mkdir(parents=True, exist_ok=True)
        params = yaml.safe_load(dvc_exp.read_committed(exp, "params.yaml", repo))
        params["evaluate"]["decoding"] = decoding
        _point_at_restored_benchmarks(params, exp, repo, work)
        params_file = out.parent / f"{obj}_params.yaml"
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        cmd = [sys.executable, "-m", "stages.evaluate", "--params", str(params_file),
               "--model", str(dvc_exp.cache_path(md5, repo)), "--out", str(out)]  # fmt: skip
        print(f"study: {exp.name}: evaluating {obj} with {decoding} decoding", flush=True)
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
        if proc.returncode:
            raise dvc_exp.ExperimentError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        (out / "model.md5").write_text(md5)
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics, parse_per_image((out / "per_image.csv").read_text(), str(out))


def _objective_record(exp: dvc_exp.Experiment, obj: str, repo: Path) -> dict[str, Any]:
    benches = sorted(exp.metrics.get(f"outputs/eval/{obj}/metrics.json", {}))
    if not benches:
        raise dvc_exp.ExperimentError(f"experiment {exp.name}: no evaluate metrics for {obj}")
    sides, curve = dvc_exp.scale_curve(exp, obj, repo)
    summary = dvc_exp.scales_committed(exp, obj, repo)
    if not summary.get("exposure_gap"):
        raise dvc_exp.ExperimentError(
            f"experiment {exp.name}: models/{obj}/scales.json has no exposure gap"
        )
    text = dvc_exp.read_cached(exp, f"evaluate@{obj}", f"outputs/eval/{obj}/per_image.csv", repo)
    return {
        "eval": {
            b: {m: dvc_exp.eval_metric(exp, obj, b, m) for m in ("abs_rel", "delta1")}
            for b in benches
        },
        "per_image": parse_per_image(text, f"experiment {exp.name} {obj}"),
        "patch_nums": sides,
        "scales_abs_rel": curve,
        "val_first": float(summary["val_abs_rel_first_scale"]),
        "val_last": float(summary["val_abs_rel"]),
        "ablation": summary.get("prefix_ablation") or {},
        "exposure": summary["exposure_gap"],
    }


def collect(
    exps: dict[str, dvc_exp.Experiment],
    points: dict[str, dict[str, Any]],
    objectives: list[str],
    repo: Path,
    decodings: list[str],
    work: Path,
    keys: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """A record per experiment (its own decoding: params.yaml's ``evaluate.decoding``) and,
    for the default's seeds, one per other decoding in ``decodings`` (same trainings,
    rescored by :func:`evaluate_cached`)."""
    records = []
    for name, point in points.items():
        exp = exps[name]
        own = str(exp.params.get("evaluate.decoding", "expected"))
        per_obj = {obj: _objective_record(exp, obj, repo) for obj in objectives}
        base = {"experiment": name, "rev": exp.rev, "seed": point["seed"],
                "variant": point["variant"],
                "params": {k: exp.params.get(k) for k in (*point["overrides"], *keys)}}  # fmt: skip
        records.append({**base, "decoding": own, "objectives": per_obj})
        if point["variant"] not in ("default", "trend"):
            continue
        for decoding in (d for d in decodings if d != own):
            rescored = {}
            for obj in objectives:
                metrics, images = evaluate_cached(exp, obj, decoding, repo, work)
                evals = {
                    b: {m: float(v["lsq"][m]) for m in ("abs_rel", "delta1")}
                    for b, v in metrics.items()
                    if isinstance(v, dict) and "lsq" in v
                }
                rescored[obj] = {**per_obj[obj], "eval": evals, "per_image": images}
            records.append({**base, "decoding": decoding, "objectives": rescored})
    return records


def _plot_band(ax: Any, x: list[int], curves: list[list[float]], color: str, label: str) -> None:
    for curve in curves:
        ax.plot(x, curve, color=color, lw=0.7, alpha=0.4)
    mean_K, std_K = band(curves)
    lo = [m - (0 if math.isnan(s) else s) for m, s in zip(mean_K, std_K, strict=True)]
    hi = [m + (0 if math.isnan(s) else s) for m, s in zip(mean_K, std_K, strict=True)]
    ax.fill_between(x, lo, hi, color=color, alpha=0.2)
    ax.plot(x, mean_K, color=color, lw=2, marker="o", label=f"{label} (n={len(curves)})")


def plot(records: list[dict[str, Any]], objectives: list[str], out: Path) -> None:
    """study_scales.png (per-scale val AbsRel) and study_exposure.png (the exposure gap per
    scale under each decoding): each seed thin, the mean bold with a +- std band."""
    base = [r for r in records if r["variant"] == "default" and r["decoding"] == "expected"]
    sides = base[0]["objectives"][objectives[0]]["patch_nums"]
    x = list(range(len(sides)))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, obj in enumerate(objectives):
        curves = [r["objectives"][obj]["scales_abs_rel"] for r in base]
        _plot_band(ax, x, curves, f"C{i}", LABELS.get(obj, obj))
    ax.set_xticks(x, [f"{p}x{p}" for p in sides])
    ax.set(xlabel="scale (coarse to fine)", ylabel="val AbsRel (lsq)",
           title="Per-scale val AbsRel: mean ± std over seeds")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out / "study_scales.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    decodings = sorted(base[0]["objectives"][objectives[0]]["exposure"])
    if not decodings:
        return
    fig, axes = plt.subplots(1, len(decodings), figsize=(4.2 * len(decodings), 3.6), sharey=True)
    for ax, decoding in zip(list(getattr(axes, "flat", [axes])), decodings, strict=True):
        for i, obj in enumerate(objectives):
            curves = [r["objectives"][obj]["exposure"][decoding]["abs_rel_gap"] for r in base]
            _plot_band(ax, x, curves, f"C{i}", LABELS.get(obj, obj))
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, [f"{p}x{p}" for p in sides])
        ax.set(title=f"{decoding} decoding", xlabel="scale")
        ax.grid(alpha=0.3)
    axes_list = list(getattr(axes, "flat", [axes]))
    axes_list[0].set_ylabel("exposure gap: val AbsRel own - teacher-forced")
    axes_list[0].legend()
    fig.tight_layout()
    with atomic_path(out / "study_exposure.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_answer(learning_md: Path, text: str) -> None:
    """Replace the generated block between the answer markers of docs/learning.md."""
    page = learning_md.read_text()
    pattern = re.compile(re.escape(ANSWER_BEGIN) + ".*?" + re.escape(ANSWER_END), re.S)
    if not pattern.search(page):
        raise dvc_exp.ExperimentError(f"{learning_md}: no {ANSWER_BEGIN} ... {ANSWER_END} block")
    block = f"{ANSWER_BEGIN}\n{text}\n{ANSWER_END}"
    write_text_atomic(learning_md, pattern.sub(lambda _: block, page, count=1))


def _previous_wall(study_json: Path) -> str:
    """``--collect-only`` re-tabulates: keep the wall time the earlier run measured."""
    if study_json.is_file():
        return str(json.loads(study_json.read_text())["meta"]["wall"])
    return "not measured (--collect-only)"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ablations", nargs="*", default=list(ABLATIONS), choices=ABLATIONS)
    ap.add_argument(
        "--trend",
        default="train.steps=200,800",
        metavar="KEY=V1,V2",
        help="the default at other values of one param, first seed ('' = none)",
    )
    ap.add_argument("--ablation-seeds", type=int, default=2, help="the first N of --seeds")
    ap.add_argument("--decodings", nargs="+", default=list(DECODINGS),
                    help="decodings the default's seeds are scored under")  # fmt: skip
    ap.add_argument("--work", type=Path, default=Path("outputs/study"),
                    help="where the other decodings' evaluations are kept")  # fmt: skip
    ap.add_argument("--model", default="tiny", help="the default's model (variants: MODEL-x)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="params.yaml override for every point, e.g. train.steps=2000")  # fmt: skip
    ap.add_argument("--objectives", nargs="+", default=list(dvc_exp.DEFAULT_OBJECTIVES))
    ap.add_argument("--wall", default="", help="with --collect-only: the queue's measured time")
    ap.add_argument("--out", type=Path, default=Path("docs/learning"))
    ap.add_argument("--learning-md", type=Path, default=Path("docs/learning.md"))
    dvc_exp.add_queue_options(ap, "study")
    args = ap.parse_args(argv)
    repo = Path.cwd()
    params_file = repo / "params.yaml"
    try:
        overrides = dvc_exp.parse_sets(args.set, params_file)
    except dvc_exp.GridError as exc:
        ap.error(str(exc))
    points = plan(args.seeds, args.ablations, args.ablation_seeds, args.name_prefix, args.model)
    trend_key = ""
    if args.trend:
        try:
            trend_key, trend_values = dvc_exp.parse_assignment(args.trend)
        except dvc_exp.GridError as exc:
            ap.error(str(exc))
        points |= trend_points(trend_key, trend_values, args.seeds[0], args.name_prefix)
    for point in points.values():
        point["overrides"] = {**overrides, **point["overrides"]}
    expected = estimate_s(yaml.safe_load(params_file.read_text()), points)
    print(f"study: {len(points)} experiments; estimated wall time on 2 free cores "
          f"{expected / 60:.0f} min (+ up to {UPSTREAM_COLD_S / 60:.0f} min if the data, "
          "tokenizer and features stages are not yet in DVC's run cache)", flush=True)  # fmt: skip
    wall = args.wall or _previous_wall(args.out / "study.json")
    if not args.collect_only:
        dvc_exp.queue([(n, p["overrides"]) for n, p in points.items()],
                      dvc_exp.stage_targets(args.objectives), repo)  # fmt: skip
        waited = dvc_exp.run_queue(list(points), repo, args.jobs, args.timeout_h * 3600)
        wall = f"{waited / 60:.1f} min measured (estimate {expected / 60:.0f} min)"
        print(f"study: experiments finished in {waited / 60:.1f} min", flush=True)
    exps = dvc_exp.show(list(points), repo)
    keys = (trend_key,) if trend_key else ()
    records = collect(exps, points, args.objectives, repo, args.decodings, args.work, keys)
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
        "trend_key": trend_key,
    }
    text = render(records, args.objectives, meta)
    write_text_atomic(args.out / "study.md", text)
    write_text_atomic(
        args.out / "study.json", json.dumps({"meta": meta, "records": records}, indent=1)
    )
    plot(records, args.objectives, args.out)
    write_answer(args.learning_md, answer(records, args.objectives, meta))
    print(text)
    print(f"wrote {args.out}/study.md, study_scales.png, study_exposure.png, study.json and "
          f"the answer block of {args.learning_md}")  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except dvc_exp.ExperimentError as exc:
        sys.exit(f"study: {exc}")
