"""Who is champion: a decision that only evidence moves (pure; the register stage calls it).

A rank table of means orders two models by 0.0001 of AbsRel as surely as by 0.1, lets a
third model flip their order, and breaks a tie by whatever order the names sort in. The
rules here (issue 24) rule each of those out:

- :func:`evidence_ranks`: the rank is computed among this round's candidates and the
  sitting champion only (the *pool*); per (benchmark, metric) a model's rank is
  ``1 + (#pool members significantly better) + (#members not significantly different) / 2``,
  the mean-of-ranks rule with "inside the paired bootstrap interval" as the tie. Past
  versions and references get :func:`beside_ranks`: each the rank it would take were it
  added to the pool alone, so none of them moves the pool's order.
- :func:`break_tie`: new candidates tied at the best rank are separated by the paired
  bootstrap of the promotion metric, or not at all (nobody is promoted). Never by name.
- :func:`beats_references`: the first champion must be significantly better than the best
  content-free reference of each benchmark on at least half of the benchmarks.
- :func:`decide_promotion`: a tie with the sitting champion keeps it; a challenger needs
  a strictly better rank and a significant AbsRel win on at least half of the benchmarks.

Pair intervals come as :data:`PairCIs`: ``{(a, b): {benchmark: {metric: DiffCI(a - b)}}}``
(:func:`pair_cis` builds it from :func:`depthcore.evaluation.comparison.compare_all`); a
pair or cell without an interval is a tie: no evidence, no order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from depthcore.evaluation.comparison import DiffCI, half_or_more
from depthcore.evaluation.metrics import metric_direction

#: The metric whose improvement must be significant for a promotion or a tie-break.
PROMOTION_METRIC = "abs_rel"

#: ``{(a, b): {benchmark: {metric: DiffCI(a - b)}}}``
PairCIs = Mapping[tuple[str, str], Mapping[str, Mapping[str, DiffCI]]]


def flip(ci: DiffCI) -> DiffCI:
    """The interval of ``b - a`` from that of ``a - b``."""
    return DiffCI(ci.mean_b, ci.mean_a, -ci.diff, -ci.hi, -ci.lo, ci.n)


def pair_cis(pairs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict]:
    """``compare_all``'s ``[{a, b, benchmarks}]`` as :data:`PairCIs`, both orders filled in."""
    out: dict[tuple[str, str], dict] = {}
    for p in pairs:
        out[(p["a"], p["b"])] = p["benchmarks"]
        out[(p["b"], p["a"])] = {
            bench: {m: flip(ci) for m, ci in per.items()} for bench, per in p["benchmarks"].items()
        }
    return out


def verdict(cis: PairCIs, a: str, b: str, bench: str, metric: str) -> int:
    """+1: ``a`` significantly better than ``b`` on (bench, metric); -1: ``b`` is; 0: a tie."""
    ci = cis.get((a, b), {}).get(bench, {}).get(metric)
    if ci is None or not ci.excludes_zero:
        return 0
    return 1 if ci.a_better(metric) else -1


def evidence_ranks(
    pool: Sequence[str], benchmarks: Sequence[str], metrics: Sequence[str], cis: PairCIs
) -> dict[str, float]:
    """Mean rank (1 = best) of each pool member over (benchmark, metric), ties by interval.

    With every difference significant this is the ordinary rank (1..M); with none, every
    model gets (M + 1) / 2. Only the pool's own pairs are read.
    """
    if not pool or not benchmarks or not metrics:
        raise ValueError(f"evidence_ranks needs a pool, benchmarks and metrics: {pool}")
    cells = [(b, m) for b in benchmarks for m in metrics]
    ranks = {}
    for label in pool:
        total = 0.0
        for bench, metric in cells:
            votes = [verdict(cis, label, other, bench, metric) for other in pool if other != label]
            total += 1.0 + sum(v < 0 for v in votes) + 0.5 * sum(v == 0 for v in votes)
        ranks[label] = total / len(cells)
    return ranks


def beside_ranks(
    pool: Sequence[str],
    others: Sequence[str],
    benchmarks: Sequence[str],
    metrics: Sequence[str],
    cis: PairCIs,
) -> dict[str, float]:
    """Each of ``others`` (past versions, references) ranked as if added to the pool alone."""
    return {
        label: evidence_ranks([*pool, label], benchmarks, metrics, cis)[label] for label in others
    }


def significant_wins(
    cis: PairCIs, a: str, b: str, metric: str = PROMOTION_METRIC
) -> tuple[list[str], list[str]]:
    """(benchmarks where ``a`` is significantly better than ``b`` on ``metric``, compared)."""
    per_bench = cis.get((a, b), {})
    compared = sorted(bench for bench, per in per_bench.items() if metric in per)
    return [bench for bench in compared if verdict(cis, a, b, bench, metric) > 0], compared


def break_tie(tied: Sequence[str], cis: PairCIs, metric: str = PROMOTION_METRIC) -> str | None:
    """The one tied candidate the bootstrap puts ahead of all others, or None.

    A candidate is ahead of another when it is significantly better on ``metric`` on at
    least half of the benchmarks they share; exactly one candidate must be ahead of every
    other one, else the tie stands (nobody is chosen, whatever the names).
    """
    if len(tied) == 1:
        return tied[0]
    ahead = [
        a
        for a in tied
        if all(half_or_more(*map(len, significant_wins(cis, a, b, metric))) for b in tied if b != a)
    ]
    return ahead[0] if len(ahead) == 1 else None


def beats_references(
    candidate: str, references: Sequence[str], cis: PairCIs, metric: str = PROMOTION_METRIC
) -> tuple[list[str], list[str]]:
    """(benchmarks where ``candidate`` is significantly better than that benchmark's best
    content-free reference, benchmarks compared).

    The best reference of a benchmark is the one with the best mean ``metric`` there (read
    from the candidate's intervals); references tied at that mean must all be beaten.
    """
    means: dict[str, dict[str, float]] = {}
    for ref in references:
        for bench, per in cis.get((candidate, ref), {}).items():
            if metric in per:
                means.setdefault(bench, {})[ref] = per[metric].mean_b
    pick = min if metric_direction(metric) == "lower" else max
    compared = sorted(means)
    wins = [
        bench
        for bench in compared
        if all(
            verdict(cis, candidate, ref, bench, metric) > 0
            for ref, mean in means[bench].items()
            if mean == pick(means[bench].values())
        )
    ]
    return wins, compared


@dataclass(frozen=True)
class PromotionDecision:
    """What the champion rule decided and why (JSON via :meth:`to_json`).

    ``winner`` is the label the alias moves to (None: it stays). ``challenger`` is this
    round's best new candidate (None when a tie among new ones stood). ``significant``
    lists the benchmarks where it is significantly better on AbsRel than the champion
    (or, for a first champion, than the best reference), out of ``compared``.
    """

    promote: bool
    winner: str | None
    challenger: str | None
    champion: str | None
    challenger_rank: float | None
    champion_rank: float | None
    significant: tuple[str, ...]
    compared: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["significant"] = list(self.significant)
        data["compared"] = list(self.compared)
        return data


def decide_promotion(
    ranks: Mapping[str, float],
    new_labels: Sequence[str],
    champion: str | None,
    cis: PairCIs,
    references: Sequence[str] = (),
) -> PromotionDecision:
    """Promote this round's best new model only on evidence (module docstring).

    ``ranks``: :func:`evidence_ranks` of the pool (new labels and the champion);
    ``champion``: the sitting champion, None when there is none or it has no stored metrics
    (then the first-champion rule applies); ``references``: the content-free references'
    labels, whose intervals against the new labels are in ``cis``.
    """
    sitting = champion if champion in ranks else None

    def decision(winner, challenger, reason, sig=(), compared=()) -> PromotionDecision:
        return PromotionDecision(
            promote=winner is not None,
            winner=winner,
            challenger=challenger,
            champion=champion,
            challenger_rank=ranks.get(challenger) if challenger else None,
            champion_rank=ranks.get(sitting) if sitting else None,
            significant=tuple(sig),
            compared=tuple(compared),
            reason=reason,
        )

    if not new_labels:
        return decision(None, None, "no new model this round")
    top = min(ranks[lab] for lab in new_labels)
    tied = [lab for lab in new_labels if ranks[lab] == top]
    if sitting in tied:
        return decision(None, sitting, f"{sitting} (rank {top:.3f}) is already champion"
                        + (" (a tie keeps the champion)" if len(tied) > 1 else ""))  # fmt: skip
    best = break_tie(tied, cis)
    if best is None:
        return decision(
            None, None,
            f"keep champion {champion}: new candidates {', '.join(sorted(tied))} tie at rank "
            f"{top:.3f} and the paired bootstrap of AbsRel puts none ahead of the others "
            "on at least half of the benchmarks",
        )  # fmt: skip
    tie_text = f" (ahead of {len(tied) - 1} tied by the paired bootstrap)" if len(tied) > 1 else ""
    if sitting is None:
        sig, compared = beats_references(best, references, cis)
        ref_text = (
            f"AbsRel significantly better than the best content-free reference on {len(sig)} "
            f"of {len(compared)} benchmarks" + (f" ({', '.join(sig)})" if sig else "")
        )
        if not half_or_more(len(sig), len(compared)):
            return decision(None, best, f"no champion: {best} (rank {top:.3f}){tie_text} has "
                            f"{ref_text}; at least half needed", sig, compared)  # fmt: skip
        return decision(best, best, f"{best} (rank {top:.3f}){tie_text} is the first champion: "
                        f"{ref_text}", sig, compared)  # fmt: skip
    r_old = ranks[sitting]
    sig, compared = significant_wins(cis, best, sitting)
    ranks_text = f"{best} rank {top:.3f}{tie_text} vs champion {sitting} rank {r_old:.3f}"
    sig_text = (
        f"AbsRel significantly better on {len(sig)} of {len(compared)} benchmarks"
        + (f" ({', '.join(sig)})" if sig else "")
        + " (paired bootstrap CI excludes 0)"
    )
    if top > r_old:
        return decision(None, best, f"keep champion: {ranks_text} (worse)", sig, compared)
    if top == r_old:
        return decision(
            None, best, f"keep champion: {ranks_text} (a tie keeps the champion)", sig, compared
        )
    if not compared:
        return decision(
            None, best,
            f"keep champion: {ranks_text}, but no per-image metrics of both to test significance",
        )  # fmt: skip
    if not half_or_more(len(sig), len(compared)):
        return decision(None, best, f"keep champion: {ranks_text} but {sig_text}; at least "
                        "half needed", sig, compared)  # fmt: skip
    return decision(best, best, f"promote {best}: {ranks_text} and {sig_text}", sig, compared)
