"""The study's markdown and its answer block: every number computed from the records.

Pure functions of the records ``bench.learning.study.collect`` builds (one per DVC
experiment: seed, variant, decoding, and per objective the benchmark means, the per-image
metrics, the per-scale curve, the route ablation and the exposure gap), so the tables are
checked on synthetic records (tests/bench/test_study_tables.py) without training anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.learning.study_stats import SeedImageCI, fmt, mean_std, seed_image_ci

LABELS = {"depthart": "DepthART", "var_tf": "VAR-TF", "regression": "regression"}
VARIANTS = {
    "default": "default (token prefix + local projection + pixel path)",
    "nopixel": "no pixel path (`tiny-nopixel`)",
    "nolocal": "no local prefix projection (`tiny-nolocal`)",
    "frameonly": "token prefix blanked, pixel path kept (`tiny-frameonly`)",
}
ROUTES = ("real", "zero", "other", "zero_prefix", "zero_frame")


def select(records: list[dict[str, Any]], variant: str = "default", decoding: str = "expected"):
    return [r for r in records if r["variant"] == variant and r["decoding"] == decoding]


def decodings(records: list[dict[str, Any]]) -> list[str]:
    return sorted({r["decoding"] for r in records if r["variant"] == "default"})


def benchmarks(records: list[dict[str, Any]], objective: str) -> list[str]:
    return sorted(records[0]["objectives"][objective]["eval"])


def head_to_head(
    runs: list[dict[str, Any]], a: str, b: str, bench: str, metric: str
) -> SeedImageCI:
    """``a - b`` on one benchmark, paired over the runs' seeds and the benchmark's images."""
    names = sorted(runs[0]["objectives"][a]["per_image"][bench])
    rows: dict[str, list[list[float]]] = {a: [], b: []}
    for run in runs:
        for obj in (a, b):
            images = run["objectives"][obj]["per_image"][bench]
            if sorted(images) != names:
                raise ValueError(f"{run['experiment']}: {obj} scored other {bench} images")
            rows[obj].append([images[n][metric] for n in names])
    return seed_image_ci(np.array(rows[a]), np.array(rows[b]))


def _ci(c: SeedImageCI, digits: int = 4) -> str:
    return f"{c.diff:+.{digits}f} [{c.lo:+.{digits}f}, {c.hi:+.{digits}f}]"


def _verdict(c: SeedImageCI, lower: bool, a: str, b: str) -> str:
    return {"a": f"**{a} better**", "b": f"**{b} better**", "tie": "no significant difference"}[
        c.verdict(lower)
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def exposure_final(run: dict[str, Any], obj: str, decoding: str) -> dict[str, float] | None:
    """The exposure gap's final-scale numbers and mean loss gap of one run, or None."""
    gap = run["objectives"][obj]["exposure"].get(decoding)
    if not gap:
        return None
    return {
        "tf": gap["abs_rel_teacher_forced"][-1],
        "own": gap["abs_rel_own"][-1],
        "gap": gap["abs_rel_gap"][-1],
        "loss_gap": float(np.mean(gap["loss_gap"])),
    }


def _exposure_mean(runs: list[dict[str, Any]], obj: str, decoding: str, key: str) -> float:
    values = [e[key] for r in runs if (e := exposure_final(r, obj, decoding)) is not None]
    return mean_std(values)[0] if values else float("nan")


def answer(records: list[dict[str, Any]], objectives: list[str], meta: dict[str, Any]) -> str:
    """The first lines of docs/learning.md: who wins, by how much, under which decoding,
    and the exposure gap of each objective, with the target stated next to the result."""
    a, b = objectives[0], objectives[1]
    la, lb = LABELS.get(a, a), LABELS.get(b, b)
    base = select(records)
    seeds = len(base)
    lines = [
        f"**Does {la} beat {lb} here?** From `make study` ({meta['date']}, commit "
        f"`{meta['commit']}`, {seeds} seeds, each seed its own shared warm-up; "
        "AbsRel with lsq alignment, 95 % intervals over seeds x images; "
        "docs/learning/study.md):",
        "",
    ]
    wins_sample = 0
    for decoding in decodings(records):
        runs = select(records, decoding=decoding)
        cis = {n: head_to_head(runs, a, b, n, "abs_rel") for n in benchmarks(runs, a)}
        won = [n for n, c in cis.items() if c.verdict() == "a"]
        lost = [n for n, c in cis.items() if c.verdict() == "b"]
        if decoding == "sample":
            wins_sample = len(won)
        mean_a = float(np.mean([c.mean_a for c in cis.values()]))
        mean_b = float(np.mean([c.mean_b for c in cis.values()]))
        rel = 100 * (mean_a - mean_b) / mean_b
        lines.append(
            f"- `{decoding}` decoding: {la} significantly better on {len(won)} of {len(cis)} "
            f"benchmarks ({', '.join(won) or 'none'}), {lb} on {len(lost)} "
            f"({', '.join(lost) or 'none'}); mean AbsRel {mean_a:.4f} vs {mean_b:.4f} "
            f"({rel:+.1f} %)."
        )
    gap_a = _exposure_mean(base, a, "sample", "gap")
    gap_b = _exposure_mean(base, b, "sample", "gap")
    lines.append(
        f"- Exposure gap (final-scale val AbsRel with the model's own sampled rollout minus "
        f"with teacher-forced inputs, mean over seeds): {la} {gap_a:+.4f}, {lb} {gap_b:+.4f}"
        + (f" (ratio {gap_a / gap_b:.2f})." if gap_b > 0 else ".")
    )
    met_wins = wins_sample >= 3
    met_gap = gap_b > 0 and gap_a <= gap_b / 2
    lines.append(
        f"- Target (issue 24: significant on >= 3 of 4 benchmarks under `sample`, gap at "
        f"most half of {lb}'s): {'met' if met_wins and met_gap else 'not met'} "
        f"(wins {'met' if met_wins else 'not met'}, gap {'met' if met_gap else 'not met'})."
    )
    return "\n".join(lines)


def _head_to_head_section(
    records: list[dict[str, Any]], a: str, b: str, decoding: str
) -> list[str]:
    runs = select(records, decoding=decoding)
    la, lb = LABELS.get(a, a), LABELS.get(b, b)
    rows = []
    for bench in benchmarks(runs, a):
        cells = [bench]
        for metric, lower in (("abs_rel", True), ("delta1", False)):
            c = head_to_head(runs, a, b, bench, metric)
            cells += [f"{c.mean_a:.4f}", f"{c.mean_b:.4f}", _ci(c), _verdict(c, lower, la, lb)]
        rows.append(cells)
    n_img = len(runs[0]["objectives"][a]["per_image"][benchmarks(runs, a)[0]])
    header = ["benchmark", f"{la} AbsRel", f"{lb} AbsRel", f"{la} - {lb} [95 % CI]", "verdict",
              f"{la} δ1", f"{lb} δ1", "δ1 diff [95 % CI]", "verdict"]  # fmt: skip
    return [
        f"## Head-to-head, `{decoding}` decoding",
        "",
        f"{len(runs)} seeds x {n_img} images per benchmark; the interval resamples seeds and "
        "images (bench/learning/study_stats.py `seed_image_ci`); negative AbsRel / positive "
        f"δ1 differences favour {la}.",
        "",
        *_table(header, rows),
        "",
    ]


def _exposure_section(records: list[dict[str, Any]], objectives: list[str]) -> list[str]:
    base = select(records)
    rows = []
    for obj in objectives:
        for decoding in sorted(base[0]["objectives"][obj]["exposure"]):
            finals = [e for r in base if (e := exposure_final(r, obj, decoding)) is not None]
            rows.append([LABELS.get(obj, obj), decoding,
                         *(fmt(*mean_std([e[k] for e in finals]), 4)
                           for k in ("tf", "own", "gap", "loss_gap"))])  # fmt: skip
    return [
        "## Exposure gap (val split, scales stage; mean ± std over seeds)",
        "",
        "The final scale's AbsRel when scales < K are the VQ-VAE's own tokens of the "
        "frame (teacher-forced) vs the model's own rollout under the decoding, and the "
        "cross-entropy gap averaged over scales (depthcore/evaluation/exposure.py). "
        "![exposure gap per scale](study_exposure.png)",
        "",
        *_table(
            [
                "objective",
                "decoding",
                "AbsRel, teacher-forced inputs",
                "AbsRel, own inputs",
                "gap",
                "mean loss gap",
            ],
            rows,
        ),  # fmt: skip
        "",
    ]


def _routes_section(records: list[dict[str, Any]], objectives: list[str]) -> list[str]:
    base = select(records)
    rows = []
    for obj in objectives:
        cells = []
        for route in ROUTES:
            values = [r["objectives"][obj]["ablation"].get(f"abs_rel_{route}") for r in base]
            ok = [v for v in values if v is not None]
            cells.append(fmt(*mean_std(ok)) if ok else "-")
        rows.append([LABELS.get(obj, obj), *cells])
    out = [
        "## Image routes blanked at evaluation (scales stage, final-scale val AbsRel)",
        "",
        *_table(
            ["objective", "real", "all zeroed", "other image", "token prefix zeroed", "frame grey"],
            rows,
        ),  # fmt: skip
        "",
    ]
    variants = [v for v in VARIANTS if select(records, v)]
    if len(variants) < 2:
        return out
    rows = []
    for variant in variants:
        runs = select(records, variant)
        seeds = {r["seed"] for r in runs}
        ref = [r for r in select(records) if r["seed"] in seeds]
        cells = [VARIANTS[variant], " ".join(str(s) for s in sorted(seeds))]
        for obj in objectives:
            means = [float(np.mean([d["abs_rel"] for d in r["objectives"][obj]["eval"].values()]))
                     for r in runs]  # fmt: skip
            ref_means = [
                float(np.mean([d["abs_rel"] for d in r["objectives"][obj]["eval"].values()]))
                for r in ref
            ]
            cells += [fmt(*mean_std(means)), f"{np.mean(means) - np.mean(ref_means):+.4f}"]
        rows.append(cells)
    la, lb = (LABELS.get(o, o) for o in objectives[:2])
    return out + [
        "## Image routes trained out (ablation experiments)",
        "",
        "Benchmark AbsRel averaged over the benchmarks (mean ± std over seeds), and the change "
        "against the default at the same seeds (positive: the route helped).",
        "",
        *_table(
            [
                "model",
                "seeds",
                f"{la} AbsRel",
                f"{la} vs default",
                f"{lb} AbsRel",
                f"{lb} vs default",
            ],
            rows,
        ),  # fmt: skip
        "",
    ]


def _trend_section(records: list[dict[str, Any]], objectives: list[str], key: str) -> list[str]:
    """DepthART - VAR-TF along one param at one seed: where would the answer flip?"""
    trend = [r for r in records if r["variant"] == "trend"]
    if not key or not trend:
        return []
    seed = trend[0]["seed"]
    a, b = objectives[0], objectives[1]
    la, lb = LABELS.get(a, a), LABELS.get(b, b)
    rows = []
    for decoding in sorted({r["decoding"] for r in trend}):
        runs = [r for r in records if r["seed"] == seed and r["decoding"] == decoding
                and r["variant"] in ("default", "trend")]  # fmt: skip
        for run in sorted(runs, key=lambda r: float(r["params"][key])):
            cis = {n: head_to_head([run], a, b, n, "abs_rel") for n in benchmarks([run], a)}
            won = sum(c.verdict() == "a" for c in cis.values())
            lost = sum(c.verdict() == "b" for c in cis.values())
            mean_a = float(np.mean([c.mean_a for c in cis.values()]))
            mean_b = float(np.mean([c.mean_b for c in cis.values()]))
            gaps = [exposure_final(run, o, "sample") for o in (a, b)]
            gap_text = " / ".join("-" if g is None else f"{g['gap']:+.4f}" for g in gaps)
            rows.append([str(run["params"][key]), decoding, f"{mean_a:.4f}", f"{mean_b:.4f}",
                         f"{100 * (mean_a - mean_b) / mean_b:+.1f} %",
                         f"{won} / {lost} / {len(cis) - won - lost}", gap_text])  # fmt: skip
    return [
        f"## Trend along `{key}` (seed {seed})",
        "",
        f"Mean benchmark AbsRel (lsq) of each objective, {la}'s change against {lb}, the "
        f"benchmarks where {la} is significantly better / worse / neither (95 % image "
        "bootstrap, one seed), and the final-scale exposure gap under sample decoding "
        f"({la} / {lb}).",
        "",
        *_table(
            [
                key,
                "decoding",
                f"{la} AbsRel",
                f"{lb} AbsRel",
                f"{la} vs {lb}",
                "better / worse / tie",
                "exposure gap",
            ],
            rows,
        ),  # fmt: skip
        "",
    ]


def render(records: list[dict[str, Any]], objectives: list[str], meta: dict[str, Any]) -> str:
    """The study's markdown: every number computed from ``records``."""
    base = select(records)
    lab = [LABELS.get(o, o) for o in objectives]
    out = [
        f"# Study: {' vs '.join(lab)}",
        "",
        "Written by `python -m bench.learning.study` (do not edit by hand).",
        "",
        f"- command: `{meta['command']}`",
        f"- commit: `{meta['commit']}`; params.yaml overrides: {meta['overrides'] or 'none'}",
        "- experiments: "
        + ", ".join(f"`{n}`" for n in dict.fromkeys(r["experiment"] for r in records)),
        f"- wall time: {meta['wall']}; written {meta['date']}",
        "",
        answer(records, objectives, meta),
        "",
    ]
    for decoding in decodings(records):
        out += _head_to_head_section(records, objectives[0], objectives[1], decoding)
    out += _exposure_section(records, objectives)
    first = base[0]["objectives"][objectives[0]]["patch_nums"]
    out += ["## Per-scale val AbsRel (mean ± std); ![curves](study_scales.png)", ""]
    rows = []
    for o, name in zip(objectives, lab, strict=True):
        curves = np.array([r["objectives"][o]["scales_abs_rel"] for r in base])
        rows.append([name, *(fmt(*mean_std(list(col))) for col in curves.T)])
    out += [*_table(["objective", *(f"{p}x{p}" for p in first)], rows), ""]
    out += _routes_section(records, objectives)
    out += _trend_section(records, objectives, meta.get("trend_key", ""))
    benches = benchmarks(records, objectives[0])
    rows = [
        [r["experiment"], str(r["seed"]), r["variant"], r["decoding"], LABELS.get(o, o),
         *(f"{r['objectives'][o]['eval'][b]['abs_rel']:.4f}" for b in benches)]
        for r in records for o in objectives
    ]  # fmt: skip
    out += [
        "## Every run (benchmark AbsRel, lsq)",
        "",
        *_table(["experiment", "seed", "variant", "decoding", "objective", *benches], rows),
        "",
    ]
    return "\n".join(out)
