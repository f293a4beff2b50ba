"""The markdown artifacts of a retrain run, built from the stage outputs (no recomputation).

Besides the rank table and the register stage's comparison, a run publishes the
headline table (the register stage's headline files: rank, AbsRel and delta1 per
benchmark, DepthART next to the baseline and the references) and the per-scale
curves of both objectives (their ``scales.csv``), so the Prefect UI answers "did the
new objective win, and where along the scales" without opening DVC or MLflow.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


def headline_markdown(headline_dir: Path) -> str | None:
    """A row per candidate, best rank first, from ``headline/<candidate>.json`` (None: absent)."""
    files = sorted(headline_dir.glob("*.json")) if headline_dir.is_dir() else []
    if not files:
        return None
    rows = {f.stem: json.loads(f.read_text()) for f in files}
    columns = sorted({k for row in rows.values() for k in row} - {"rank", "version"})
    lines = [
        "| candidate | rank | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for name, row in sorted(rows.items(), key=lambda kv: kv[1].get("rank", float("inf"))):
        label = f"{name} (v{row['version']})" if "version" in row else name
        cells = [f"{row[c]:.4f}" if c in row else "-" for c in columns]
        lines.append(
            f"| {label} | {row.get('rank', float('nan')):.3f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def per_scale_markdown(models_dir: Path, objectives: tuple[str, ...]) -> str | None:
    """AbsRel after each scale, one column per objective, from ``<objective>/scales.csv``."""
    curves: dict[str, dict[str, str]] = {}
    for objective in objectives:
        path = models_dir / objective / "scales.csv"
        if path.is_file():
            with open(path, newline="") as fh:
                curves[objective] = {r["scale"]: r["abs_rel"] for r in csv.DictReader(fh)}
    if not curves:
        return None
    scales = sorted({s for c in curves.values() for s in c}, key=int)
    lines = ["| scale | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves)]
    for scale in scales:
        cells = [f"{float(c[scale]):.4f}" if scale in c else "-" for c in curves.values()]
        lines.append(f"| {scale} | " + " | ".join(cells) + " |")
    return "AbsRel (validation) after each scale, coarse to fine:\n\n" + "\n".join(lines) + "\n"
