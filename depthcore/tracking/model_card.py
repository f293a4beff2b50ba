"""The model card of a registered version: a pure function from recorded facts to markdown.

Why: a card that is written by hand drifts from the model it describes. Here the
register stage gathers the facts (:class:`CardFacts`, from the training run, dvc.lock,
the checkpoint's meta, the evaluation records and the round's decision;
:mod:`depthcore.tracking.provenance`) and :func:`model_card` only formats them: every
number in the card is one of those facts, which are logged beside it
(``model_card_facts.json``), and anything not recorded says "not measured" or "not
recorded" instead of a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from depthcore.data.domain import EMBEDDED, HYPERSIM, domain_summary, photo_warning
from depthcore.tracking.lineage import DataRecord, data_hash

CARD_ARTIFACT = "model_card.md"
FACTS_ARTIFACT = "model_card_facts.json"
#: Licences of what the weights are made from (fixed text: no numbers but the versions).
LICENCES = (
    "VAR (architecture and, in the d16 profile, the initial weights var_d16 and the "
    "VQ-VAE vae_ch160v4096z32): MIT licence, FoundationVision/VAR.",
    "Hypersim (training images in the real-data profile): Apple's Hypersim terms, "
    "CC BY-SA 3.0; weights trained on it carry its attribution and share-alike terms.",
    "Embedded synthetic scenes (default profile): rendered by this project's synth "
    "stage, under the project's licence.",
)


@dataclass(frozen=True)
class Interval:
    """One metric of one benchmark: the recorded mean and its bootstrap interval."""

    metric: str
    mean: float
    lo: float
    hi: float


@dataclass(frozen=True)
class BenchmarkFacts:
    name: str
    num_images: int
    intervals: tuple[Interval, ...]


@dataclass(frozen=True)
class CardFacts:
    """Everything a card says, each taken from a record (see module docstring)."""

    label: str
    objective: str
    model: str  # the size name (tiny, d16)
    space: str
    image_size: int | None
    trained_on: Mapping[str, Any] | None
    data: tuple[DataRecord, ...]
    train_frames: int | None
    git_commit: str
    params_hash: str
    params: Mapping[str, str]
    alignment: str
    rank_metrics: tuple[str, ...]
    ci_level: float
    resamples: int
    decoding: str
    benchmarks: tuple[BenchmarkFacts, ...]
    rank: float
    num_candidates: int
    verdict: str
    performance: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _data_lines(facts: CardFacts, context: str) -> list[str]:
    lines = []
    for r in facts.data:
        if r.context == context:
            size = ", ".join(
                p for p in (f"{r.nfiles} files" if r.nfiles is not None else "",
                            f"{r.size} bytes" if r.size is not None else "") if p
            )  # fmt: skip
            lines.append(f"- `{r.name}`: DVC md5 `{r.digest}`" + (f" ({size})" if size else ""))
    return lines or ["- not recorded (no dvc.lock entry when it was registered)"]


def _metrics_table(facts: CardFacts) -> list[str]:
    if not facts.benchmarks:
        return ["No evaluation recorded."]
    lines = [
        f"| benchmark | images | metric | mean | {facts.ci_level:.0%} interval |",
        "|---|---|---|---|---|",
    ]
    for bench in facts.benchmarks:
        for iv in bench.intervals:
            lines.append(
                f"| {bench.name} | {bench.num_images} | {iv.metric} | {iv.mean:.4f} | "
                f"[{iv.lo:.4f}, {iv.hi:.4f}] |"
            )
    return lines


def _performance(facts: CardFacts) -> list[str]:
    if not facts.performance:
        return ["Latency and memory: not measured (no such record in the training run)."]
    return [f"- {k}: {v:g}" for k, v in sorted(facts.performance.items())]


def _kind(objective: str) -> str:
    if objective == "regression":
        return (
            "The regression baseline (one forward pass of a timm backbone), the comparison's floor"
        )
    return (
        "DepthVAR: a next-scale autoregressive transformer over a VQ-VAE tokenizer, trained "
        f"with the `{objective}` objective"
    )


def _domain_lines(record: Mapping[str, Any] | None) -> list[str]:
    """What the checkpoint says it was trained on, and what that means for real photos."""
    sources = set((record or {}).get("sources") or {})
    lines = [f"- Trained on: {domain_summary(record)}."]
    if sources and sources <= {EMBEDDED, HYPERSIM}:
        lines.append(
            "- Synthetic renderings only (Hypersim's interiors are rendered too): expect a "
            "domain gap on real photos, outdoor scenes and close-ups."
        )
    if warning := photo_warning(record):
        lines.append(f"- **Note:** {warning}.")
    return lines


def model_card(facts: CardFacts) -> str:
    """The card's markdown (``model_card.md``), from ``facts`` alone."""
    size = facts.image_size if facts.image_size is not None else "its configured size"
    frames = facts.train_frames if facts.train_frames is not None else "not recorded"
    lines = [
        f"# Model card: {facts.label}",
        "",
        "## What it is",
        f"{_kind(facts.objective)}, size `{facts.model}`: it maps one RGB image, resized "
        f"to {size} x {size}, to a depth map in the `{facts.space}` space.",
        "",
        "## Intended use and limits",
        "- Relative depth of indoor-like scenes: the output is **affine-invariant** (known "
        "up to a scale and a shift in its space), **not metric**; `depthart align` turns it "
        "into metres with a few known points.",
        *_domain_lines(facts.trained_on),
        "",
        "## Training data",
        f"Data version (hash of the training inputs' DVC hashes): `{data_hash(facts.data)}`; "
        f"training frames: {frames}.",
        "",
        *_data_lines(facts, "training"),
        "",
        "Built from:",
        "",
        *_data_lines(facts, "training.source"),
        "",
        "## Provenance",
        f"- git commit `{facts.git_commit}`",
        f"- params hash `{facts.params_hash}` (the training run's params below)",
        "",
        "## Parameters",
        "| param | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in sorted(facts.params.items())),
        "",
        "## Evaluation protocol",
        f"Zero-shot on the benchmarks below; predictions resampled to the ground truth and "
        f"aligned per image (`{facts.alignment}`), decoding `{facts.decoding}`. Intervals: "
        f"percentile bootstrap of the mean over images ({facts.resamples} resamples). "
        f"Ranked on {', '.join(facts.rank_metrics)} over all benchmarks against every "
        "candidate and the reference predictors.",
        "",
        *_data_lines(facts, "evaluation"),
        "",
        "## Metrics",
        *_metrics_table(facts),
        "",
        "## Comparison verdict",
        f"Rank {facts.rank:.3f} of {facts.num_candidates} candidates (mean rank over "
        f"benchmarks and metrics, lower is better). {facts.verdict}",
        "",
        "## Latency and memory",
        *_performance(facts),
        "",
        "## Licences of the weights' sources",
        *(f"- {text}" for text in LICENCES),
        "",
    ]
    return "\n".join(lines)
