"""The results page (docs/results.md), written from the pipeline's outputs and never by hand.

:func:`results_section` turns the register stage's files (``rank_table.md``,
``registry.json``, ``comparison.json``) and the per-scale curves
(``models/<objective>/scales.csv``) into markdown whose words follow the
confidence intervals: a difference is called a win only when its paired bootstrap
interval excludes 0, otherwise it is "no significant difference".
:func:`replace_between_markers` splices it into docs/results.md between
``<!-- results:begin -->`` and ``<!-- results:end -->``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from depthcore.config import frozen
from depthcore.errors import DataError


@frozen
class ReportConfig:
    """The ``report`` section of params.yaml."""

    register_dir: str = "outputs/register"  # the register stage's outputs
    models_dir: str = "models"  # <models_dir>/<objective>/scales.csv
    objectives: tuple[str, ...] = ("depthart", "var_tf")  # the head-to-head pair
    out: str = "outputs/report/results.md"


BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
METRIC_NAMES = {"abs_rel": "AbsRel", "delta1": "delta1"}


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: not found (run `dvc repro` first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from exc


def read_scales(path: Path) -> dict[int, float]:
    """``{patch_num: abs_rel}`` of a scales.csv."""
    if not path.is_file():
        raise DataError(f"{path}: not found (run the scales stage first)")
    with path.open(newline="") as fh:
        return {int(r["patch_num"]): float(r["abs_rel"]) for r in csv.DictReader(fh)}


def _pair_sentences(pair: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    """One line per (benchmark, metric) of a pair, worded by its interval."""
    a, b = names.get(pair["a"], pair["a"]), names.get(pair["b"], pair["b"])
    lines = []
    for bench, per_metric in sorted(pair["benchmarks"].items()):
        for metric, ci in per_metric.items():
            verdict = ci["verdict"].replace(pair["a"], a).replace(pair["b"], b)
            lines.append(
                f"| {bench} | {METRIC_NAMES.get(metric, metric)} | {ci['mean_a']:.4f} | "
                f"{ci['mean_b']:.4f} | {ci['diff']:+.4f} | [{ci['lo']:+.4f}, {ci['hi']:+.4f}] | "
                f"{ci['n']} | {verdict} |"
            )
    return lines


def head_to_head(pair: Mapping[str, Any], names: Mapping[str, str], level: float) -> str:
    """The CI table of two candidates and a summary that counts only significant wins."""
    a, b = names.get(pair["a"], pair["a"]), names.get(pair["b"], pair["b"])
    verdicts = [ci["verdict"] for per in pair["benchmarks"].values() for ci in per.values()]
    a_wins = sum(v == f"{pair['a']} better" for v in verdicts)
    b_wins = sum(v == f"{pair['b']} better" for v in verdicts)
    ties = len(verdicts) - a_wins - b_wins
    if a_wins == b_wins == 0:
        summary = (
            f"{a} vs {b}: no significant difference on any of the {len(verdicts)} "
            f"(benchmark, metric) pairs at {100 * level:g} % confidence."
        )
    else:
        summary = (
            f"{a} vs {b}: {a} significantly better on {a_wins}, {b} on {b_wins}, no "
            f"significant difference on {ties} of the {len(verdicts)} (benchmark, metric) "
            f"pairs ({100 * level:g} % paired bootstrap intervals)."
        )
    head = [
        f"| benchmark | metric | {a} | {b} | {a} - {b} | {100 * level:g} % CI | images | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return summary + "\n\n" + "\n".join(head + _pair_sentences(pair, names)) + "\n"


def scales_table(curves: Mapping[str, Mapping[int, float]]) -> str:
    """Per-scale validation AbsRel of each objective, one row per scale."""
    names = list(curves)
    patch_nums = sorted(set().union(*(set(c) for c in curves.values())))
    lines = [
        "| scale (patch side) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for pn in patch_nums:
        cells = [f"{curves[n][pn]:.4f}" if pn in curves[n] else "-" for n in names]
        lines.append(f"| {pn} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def results_section(
    register_dir: str | Path, models_dir: str | Path, objectives: Sequence[str]
) -> str:
    """The whole generated results section (markdown, without the markers)."""
    register_dir, models_dir = Path(register_dir), Path(models_dir)
    registry = read_json(register_dir / "registry.json")
    comparison = read_json(register_dir / "comparison.json")
    table = (register_dir / "rank_table.md").read_text().strip()
    versions = registry.get("new_versions", {})  # objective -> label, e.g. var-tf-tiny/v1
    labels = {label: obj for obj, label in versions.items()}
    level = float(comparison["level"])
    parts = [
        "_Generated by `python -m stages.report` from the outputs of `dvc repro` "
        "(`outputs/register/`, `models/*/scales.csv`); do not edit by hand._",
        "",
        f"### Rank table ({comparison['alignment']} alignment)",
        "",
        table,
        "",
        f"Champion decision: {registry['reason']}.",
        "",
    ]
    wanted = [versions[o] for o in objectives if o in versions]
    for pair in comparison["pairs"]:
        if len(wanted) == 2 and {pair["a"], pair["b"]} == set(wanted):
            parts += [
                f"### {' vs '.join(objectives)}: paired bootstrap intervals",
                "",
                f"Per-image differences over the same images, {comparison['resamples']} "
                f"resamples, seed {comparison['seed']}; AbsRel lower is better, delta1 higher "
                "is better. All pairs of candidates: `outputs/register/comparison.md`.",
                "",
                head_to_head(pair, labels, level),
            ]
    curves = {
        o: read_scales(models_dir / o / "scales.csv")
        for o in objectives
        if (models_dir / o / "scales.csv").is_file()
    }
    if curves:
        parts += [
            "### Per-scale validation AbsRel (coarse to fine)",
            "",
            scales_table(curves),
        ]
    return "\n".join(parts).rstrip() + "\n"


def replace_between_markers(text: str, section: str, where: str = "docs/results.md") -> str:
    """``text`` with everything between the two markers replaced by ``section``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise DataError(f"{where}: markers {BEGIN} ... {END} not found (in that order)")
    return text[: start + len(BEGIN)] + "\n" + section + text[end:]


__all__ = [
    "BEGIN",
    "ReportConfig",
    "END",
    "head_to_head",
    "read_scales",
    "replace_between_markers",
    "results_section",
    "scales_table",
]
