"""What the registry pages say: version descriptions, the few curated tags, provenance hashes.

The MLflow model page shows a version's description first and its tags in one long
list, so the answer to "which model is champion and why" goes in descriptions
(markdown, written by the register stage) and the tags stay few (:data:`MAX_TAGS`):
objective, rank, provenance and two headline metrics. Every metric stays in the
training run, one click away.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthcore.evaluation.comparison import DiffCI
from depthcore.run_inputs import read_lock, stage_data_deps
from depthcore.tracking.glossary import arrow

#: The most tags a version carries (the UI lists them all above the fold).
MAX_TAGS = 12


@dataclass(frozen=True)
class Decision:
    """The champion rule's outcome as the pages show it (any decision record maps to this)."""

    promoted: bool
    reason: str
    winner: str | None = None
    challenger: str | None = None  # this round's best new version, the one judged


@dataclass(frozen=True)
class Standing:
    """One candidate in this round's table: its label, rank and headline metrics."""

    label: str
    objective: str
    rank: float
    num_candidates: int
    headline: Mapping[str, float]


def short_hash(data: Any, n: int = 12) -> str:
    """First ``n`` hex digits of the SHA-256 of ``data`` as canonical JSON."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def data_version(lock_path: str | Path, stage: str) -> str:
    """Hash of the data inputs (non-code deps) ``stage`` was built from, per dvc.lock.

    Two versions with the same data version were trained on byte-identical data
    (DVC's own content hashes); ``unknown`` when there is no dvc.lock (a hand run).
    :func:`depthcore.tracking.lineage.data_hash` is the same hash of the logged datasets.
    """
    stages = read_lock(lock_path)
    if stage not in stages:
        return "unknown"
    return short_hash({d.path: d.md5 for d in stage_data_deps(stages, stage)})


def curated_tags(
    standing: Standing,
    *,
    checkpoint_sha256: str,
    git_commit: str,
    params_hash: str,
    data_version: str,
    champion: bool,
) -> dict[str, str]:
    """The version's tags: what it is, where it stands, where it came from (<= MAX_TAGS)."""
    tags = {
        "objective": standing.objective,
        "rank": f"{standing.rank:.3f}",
        "rank_of": str(standing.num_candidates),
        "champion": "yes" if champion else "no",
        "git_commit": git_commit[:12] + ("+dirty" if git_commit.endswith("+dirty") else ""),
        "params_hash": params_hash,
        "data_version": data_version,
        "checkpoint_sha256": checkpoint_sha256,
    }
    tags.update({k: f"{v:.4f}" for k, v in standing.headline.items()})
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags exceed the {MAX_TAGS} a version page shows")
    return tags


def _headline_text(headline: Mapping[str, float]) -> str:
    parts = []
    for key, value in headline.items():
        direction = "higher" if key.endswith("delta1") else "lower"
        parts.append(f"{key} {value:.4f} {arrow(direction)}")
    return ", ".join(parts)


def ci_lines(vs_champion: Mapping[str, Mapping[str, DiffCI]], level: float) -> list[str]:
    """One markdown bullet per benchmark: AbsRel difference to the champion and its interval."""
    lines = []
    for bench, per_metric in sorted(vs_champion.items()):
        for metric, ci in per_metric.items():
            sig = "significantly better" if ci.a_better(metric) else (
                "significantly worse" if ci.excludes_zero else "no significant difference"
            )  # fmt: skip
            lines.append(
                f"- {bench} {metric}: {ci.mean_a:.4f} vs {ci.mean_b:.4f}, difference "
                f"{ci.diff:+.4f}, {level:.0%} CI [{ci.lo:+.4f}, {ci.hi:+.4f}] over {ci.n} "
                f"images: {sig}"
            )
    return lines


def _verdict(label: str, decision: Decision) -> str:
    if decision.winner == label:
        return f"**Promoted to champion.** {decision.reason}"
    if decision.challenger not in (None, label):
        return (
            f"Not promoted: {decision.challenger} was this round's best new candidate. "
            f"{decision.reason}"
        )
    return f"Not promoted. {decision.reason}"


def version_description(
    standing: Standing,
    champion: Standing | None,
    decision: Decision,
    *,
    date: str,
    run_link: str,
    vs_champion: Mapping[str, Mapping[str, DiffCI]] | None = None,
    level: float = 0.95,
) -> str:
    """Markdown for one version: what it is, its rank, the champion comparison, the verdict.

    ``champion`` is the champion it was judged against (the one before this round);
    ``vs_champion`` its paired bootstrap intervals against that champion.
    """
    lines = [
        f"**{standing.label}**: objective `{standing.objective}`, registered round of {date}.",
        "",
        f"Rank **{standing.rank:.3f}** of {standing.num_candidates} candidates "
        "(mean rank over benchmarks x metrics among this round's models and the champion, "
        "a difference inside its paired bootstrap interval a tie; 1 is best). "
        f"{_headline_text(standing.headline)}.",
        "",
        _verdict(standing.label, decision),
        "",
    ]
    if champion is not None and champion.label != standing.label:
        lines += [
            f"Against champion {champion.label} (rank {champion.rank:.3f}, "
            f"{_headline_text(champion.headline)}):",
            "",
        ]
        lines += ci_lines(vs_champion or {}, level) or ["- no per-image metrics of both"]
        lines.append("")
    lines += [f"Training run, all metrics and panels: {run_link}"]
    return "\n".join(lines)


def product_description(
    product: str,
    champion: Standing | None,
    decision: Decision,
    *,
    date: str,
    register_run_link: str,
) -> str:
    """Markdown for the served model's page: who is champion and why, this round's verdict."""
    lines = [
        f"`models:/{product}@champion` is the served depth model: the best-ranked candidate "
        "of any training objective. Candidates are registered per objective "
        "(`<objective>-<size>`); their versions say how they ranked.",
        "",
    ]
    if champion is None:
        lines.append("**No champion yet.**")
    else:
        lines.append(
            f"**Champion: {champion.label}** (objective `{champion.objective}`), rank "
            f"{champion.rank:.3f} of {champion.num_candidates}; "
            f"{_headline_text(champion.headline)}."
        )
    word = "promoted" if decision.promoted else "kept the champion"
    lines += [
        "",
        f"Round of {date}: {word}. {decision.reason}",
        "",
        f"Rank table and comparison: {register_run_link}",
    ]
    return "\n".join(lines)
