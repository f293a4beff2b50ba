"""The evaluation's files: metrics.json, per_image.csv and the panels, each written atomically.

Kept apart from :mod:`depthcore.evaluation` (which decides the numbers) so that the
file layout the register stage and the report read lives in one place.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from depthcore.evaluation.metrics import DEPTH_METRICS
from depthcore.evaluation.panels import save_panel
from depthcore.io import atomic_path, write_text_atomic

GEOMETRY_METRICS: tuple[str, ...] = ("pe_fla", "pe_ori", "dbe_acc", "dbe_com")
CSV_COLUMNS: tuple[str, ...] = (
    ("benchmark", "index", "name", "alignment") + DEPTH_METRICS + GEOMETRY_METRICS
)


def finite_only(value: Any) -> Any:
    """Drop metrics that could not be computed (NaN: e.g. no plane >= 5%, no GT edge).

    Strict JSON has no NaN, and a consumer (dvc, the registry) should see such
    a metric as absent rather than as a number.
    """
    if isinstance(value, dict):
        return {
            k: finite_only(v)
            for k, v in value.items()
            if not (isinstance(v, float) and not math.isfinite(v))
        }
    return value


def write_outputs(
    out_dir: Path,
    results: dict[str, Any],
    csv_rows: list[dict[str, Any]],
    panel_jobs: list[tuple[str, Any, np.ndarray]],
    panel_alignment: str,
) -> None:
    """Write metrics.json (NaN-free, sorted keys), per_image.csv and panels/ under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        out_dir / "metrics.json", json.dumps(finite_only(results), indent=2, sort_keys=True) + "\n"
    )
    with atomic_path(out_dir / "per_image.csv") as tmp, tmp.open("w", newline="") as fh:
        # protocol-specific metrics (the paper protocol's mae) follow the fixed columns
        extra = sorted({k for row in csv_rows for k in row} - set(CSV_COLUMNS))
        writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS) + extra, restval="")
        writer.writeheader()
        for row in csv_rows:
            writer.writerow({k: ("" if _is_nan(v) else v) for k, v in row.items()})
    with atomic_path(out_dir / "panels") as tmp_dir:
        tmp_dir.mkdir()
        for stem, sample, aligned in panel_jobs:
            save_panel(
                tmp_dir / f"{stem}.png",
                sample.rgb_HW3,
                sample.depth_HW,
                sample.valid_HW,
                aligned,
                title=f"{stem} {sample.name} ({panel_alignment} alignment)",
            )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


__all__ = ["CSV_COLUMNS", "GEOMETRY_METRICS", "finite_only", "write_outputs"]
