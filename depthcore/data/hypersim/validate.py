"""The data gate after preprocessing: a great-expectations suite over the frame and shard tables.

Two tables are validated: one row per frame (``stats.csv``, joined with what the
shards actually hold and, optionally, figures recomputed from the arrays) and one
row per shard (counts, attrs, shapes, dtypes). The result is written as a readable
markdown and JSON report whether it passes or not; a failure raises
:class:`DataError` pointing at the report, so the stage exits non-zero.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from depthcore.config import frozen, param
from depthcore.data.shards import ARRAYS, shard_files, shard_metadata
from depthcore.errors import DataError
from depthcore.io import write_text_atomic


@frozen
class ValidateConfig:
    """The ``validate`` section of params.yaml."""

    processed_dir: str = "data/processed"
    report_dir: str = "reports/validation"
    splits: tuple[str, ...] | None = None  # None: the splits preprocessing was asked for
    min_valid_frac: float = param(0.97, ge=0, le=1)
    scan_arrays: bool = True  # recompute per-frame figures from the shard arrays too


@dataclass(frozen=True)
class Check:
    """One expectation: the gx class name, its kwargs, and the name the report shows."""

    name: str
    expectation: str
    kwargs: dict[str, Any]


@dataclass
class ValidationReport:
    success: bool
    results: list[dict[str, Any]]  # table, check, expectation, column, success, observed
    markdown_path: Path
    json_path: Path

    @property
    def failed(self) -> list[str]:
        return [r["check"] for r in self.results if not r["success"]]


def _read_processed(processed: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    for name in ("stats.csv", "config.json"):
        if not (processed / name).is_file():
            raise DataError(f"{processed / name}: missing (run the preprocess stage first)")
    try:
        stats = pd.read_csv(processed / "stats.csv", dtype={"key": str, "split": str})
        config = json.loads((processed / "config.json").read_text())
    except (ValueError, OSError) as exc:
        raise DataError(f"{processed}: unreadable stats.csv or config.json: {exc}") from exc
    missing = [k for k in ("splits", "resolution", "space") if k not in config]
    if missing:
        raise DataError(f"{processed / 'config.json'}: missing key(s) {', '.join(missing)}")
    return stats, config


SCAN_COLUMNS = (
    "shard", "index", "arr_target_finite", "arr_target_min", "arr_target_max",
    "arr_depth_min", "arr_rgb_min", "arr_rgb_max", "arr_valid_frac",
)  # fmt: skip


def _scan_frame(f: h5py.File, i: int) -> dict[str, Any]:
    target_HW, depth_HW = f["target"][i], f["depth"][i]
    rgb_HW3, mask_HW = f["rgb"][i], f["mask"][i]
    finite = bool(np.isfinite(target_HW).all())
    return {
        "index": i,
        "arr_target_finite": finite,
        "arr_target_min": float(target_HW.min()) if finite else np.nan,
        "arr_target_max": float(target_HW.max()) if finite else np.nan,
        "arr_depth_min": float(depth_HW.min()),
        "arr_rgb_min": int(rgb_HW3.min()),
        "arr_rgb_max": int(rgb_HW3.max()),
        "arr_valid_frac": float(mask_HW.mean()),
    }


def scan_shard_arrays(root: Path, splits: tuple[str, ...]) -> pd.DataFrame:
    """Per-frame figures recomputed from the arrays (``arr_*`` columns), keyed by shard/index.

    This reads every frame once; it catches shards whose content disagrees with
    ``stats.csv``. Shards missing an array are left to the shard-table checks.
    """
    rows = []
    for split in splits:
        for path in shard_files(root, split):
            try:
                with h5py.File(path, "r") as f:
                    if not all(name in f for name in (*ARRAYS, "key")):
                        continue
                    shard = f"{split}/{path.name}"
                    rows += [{"shard": shard, **_scan_frame(f, i)} for i in range(len(f["key"]))]
            except OSError as exc:
                raise DataError(f"{path}: unreadable shard: {exc}") from exc
    return pd.DataFrame(rows, columns=list(SCAN_COLUMNS))


def _frame_table(
    stats: pd.DataFrame, shards: pd.DataFrame, cfg: ValidateConfig, splits: tuple[str, ...]
) -> pd.DataFrame:
    """``stats.csv`` joined with the key each shard holds at (shard, index), and scans."""
    stored = pd.DataFrame(
        [
            {"shard": r.shard, "index": i, "shard_key": k, "shard_split": r.split}
            for r in shards.itertuples(index=False)
            for i, k in enumerate(r.keys)
        ],
        columns=["shard", "index", "shard_key", "shard_split"],
    )
    frames = stats.merge(stored, on=["shard", "index"], how="left")
    # The splits each key appears in, over stats and shards together.
    in_shards = stored.rename(columns={"shard_key": "key", "shard_split": "split"})
    both = pd.concat([stats[["key", "split"]], in_shards[["key", "split"]]])
    frames["key_splits"] = frames["key"].map(both.groupby("key")["split"].nunique())
    if cfg.scan_arrays:
        scanned = scan_shard_arrays(Path(cfg.processed_dir), splits)
        frames = frames.merge(scanned, on=["shard", "index"], how="left")
    return frames


def _shard_table(shards: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """One row per shard with per-frame shapes as strings and leading lengths as ints."""
    shards = shards.drop(columns=["keys"])
    shards["n_stats_rows"] = shards["shard"].map(stats.groupby("shard").size()).fillna(0)
    shards["n_stats_rows"] = shards["n_stats_rows"].astype(int)
    for name in ARRAYS:
        shapes = shards.get(f"{name}_shape", [])
        shards[f"{name}_frame_shape"] = [str(tuple(s[1:])) for s in shapes]
        shards[f"{name}_len"] = [s[0] if s else -1 for s in shapes]
        shards = shards.drop(columns=[f"{name}_shape"], errors="ignore")
    return shards


def build_tables(cfg: ValidateConfig) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, ...], dict]:
    """The frame table and the shard table the suites run on, plus the splits and config."""
    processed = Path(cfg.processed_dir)
    stats, config = _read_processed(processed)
    splits = tuple(cfg.splits) if cfg.splits is not None else tuple(config["splits"])
    shards = shard_metadata(processed, splits)
    if shards.empty:
        shards = pd.DataFrame(columns=["split", "shard", "n_frames", "keys", "space"])
    return _frame_table(stats, shards, cfg, splits), _shard_table(shards, stats), splits, config


def _in_set(name: str, column: str, values: list[Any]) -> Check:
    return Check(name, "ExpectColumnValuesToBeInSet", {"column": column, "value_set": values})


def _between(
    name: str, column: str, lo: float, hi: float | None = None, strict: bool = False
) -> Check:
    kwargs: dict[str, Any] = {"column": column, "min_value": lo, "max_value": hi}
    if strict:
        kwargs["strict_min"] = True
    return Check(name, "ExpectColumnValuesToBeBetween", kwargs)


def _pair(name: str, a: str, b: str) -> Check:
    return Check(name, "ExpectColumnPairValuesToBeEqual", {"column_A": a, "column_B": b})


def frame_checks(cfg: ValidateConfig, splits: tuple[str, ...], n_stored: int) -> list[Check]:
    """Expectations over the frame table (``arr_*`` ones only when the arrays were scanned)."""
    split_list = list(splits)
    checks = [
        Check("stats rows == frames in shards", "ExpectTableRowCountToEqual", {"value": n_stored}),
        Check(
            "every configured split non-empty",
            "ExpectColumnDistinctValuesToContainSet",
            {"column": "split", "value_set": split_list},
        ),
        _in_set("only configured splits", "split", split_list),
        _in_set("no key in two splits", "key_splits", [1]),
        Check("each key stored once", "ExpectColumnValuesToBeUnique", {"column": "key"}),
        _pair("stats key matches the shard's key", "key", "shard_key"),
    ]
    prefixes = ("", "arr_") if cfg.scan_arrays else ("",)
    for p in prefixes:
        what = "arrays: " if p else ""
        checks += [
            _in_set(f"{what}finite targets", f"{p}target_finite", [True]),
            _between(f"{what}valid fraction", f"{p}valid_frac", cfg.min_valid_frac, 1.0),
            _between(f"{what}target within [-1, 1] (min)", f"{p}target_min", -1.0, 1.0),
            _between(f"{what}target within [-1, 1] (max)", f"{p}target_max", -1.0, 1.0),
            _between(f"{what}depth > 0", f"{p}depth_min", 0.0, strict=True),
            _between(f"{what}rgb in 0..255 (min)", f"{p}rgb_min", 0, 255),
            _between(f"{what}rgb in 0..255 (max)", f"{p}rgb_max", 0, 255),
        ]
    # Range checks skip missing values, so NaN must be refused explicitly.
    numeric = ["valid_frac", "target_min", "target_max", "depth_min", "norm_a", "norm_b"]
    if cfg.scan_arrays:
        numeric += ["arr_valid_frac", "arr_target_min", "arr_target_max", "arr_depth_min"]
    checks += [
        Check(f"{c} not NaN", "ExpectColumnValuesToNotBeNull", {"column": c}) for c in numeric
    ]
    return checks


def shard_checks(config: dict[str, Any]) -> list[Check]:
    """Expectations over the shard table: attrs, per-frame shapes, dtypes, counts."""
    H, W = config["resolution"]
    checks = [
        _in_set("shard space attr", "space", [config["space"]]),
        _in_set("shard height attr", "height", [H]),
        _in_set("shard width attr", "width", [W]),
        _pair("shard frames == stats rows", "n_frames", "n_stats_rows"),
    ]
    layout = {"rgb": ("uint8", (H, W, 3)), "depth": ("float32", (H, W))}
    layout |= {"mask": ("bool", (H, W)), "target": ("float32", (H, W))}
    for name, (dtype, frame_shape) in layout.items():
        checks += [
            _in_set(f"{name} dtype", f"{name}_dtype", [dtype]),
            _in_set(f"{name} frame shape", f"{name}_frame_shape", [str(frame_shape)]),
            _pair(f"{name} length == frames", f"{name}_len", "n_frames"),
        ]
    return checks


def run_checks(tables: dict[str, tuple[pd.DataFrame, list[Check]]]) -> list[dict[str, Any]]:
    """Run one great-expectations suite per table; one result row per expectation, in order."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # gx logs its set-up at INFO; the stage's log should show our results, not that. One
    # gx module pins its own logger to INFO on import, so it is quietened after the import.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("processed")
    results: list[dict[str, Any]] = []
    for table, (df, checks) in tables.items():
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{table}_suite"))
        for i, check in enumerate(checks):
            expectation = getattr(gxe, check.expectation)(**check.kwargs, meta={"order": i})
            suite.add_expectation(expectation)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{table}_validation", data=batch, suite=suite)
        )
        run = definition.run(batch_parameters={"dataframe": df})
        by_order = {r.expectation_config.meta["order"]: r for r in run.results}
        for i, check in enumerate(checks):
            r = by_order[i]
            results.append({
                "table": table,
                "check": check.name,
                "expectation": r.expectation_config.type,
                "column": check.kwargs.get("column", check.kwargs.get("column_A", "")),
                "success": bool(r.success),
                "observed": _observed(r.result, r.exception_info),
                "values": column_summary(df, check.kwargs.get("column")),
            })  # fmt: skip
    return results


def _observed(result: dict[str, Any], exception_info: Any) -> str:
    """A short human-readable summary of what the expectation saw."""
    raised = getattr(exception_info, "raised_exception", False)
    if not raised and isinstance(exception_info, dict):
        raised = exception_info.get("raised_exception", False)
    if raised:
        message = getattr(exception_info, "exception_message", None) or str(exception_info)
        return f"error: {message}"
    if "observed_value" in result:
        return _plain(result["observed_value"])
    if "unexpected_count" in result:
        n, total = result["unexpected_count"], result.get("element_count", "?")
        sample = [_plain(v) for v in result.get("partial_unexpected_list", [])[:5]]
        text = f"{n} of {total} unexpected"
        missing = result.get("missing_count", 0)
        return f"{text} (e.g. {', '.join(sample)})" if n else f"{text}; {missing} missing"
    return json.dumps(result, default=str)[:200]


def column_summary(df: pd.DataFrame, column: str | None) -> str:
    """What a column holds, for the report: numeric range or the commonest values with counts."""
    if column is None or column not in df.columns or df.empty:
        return ""
    values = df[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return f"min {_plain(float(values.min()))}, max {_plain(float(values.max()))}"
    counts = values.astype(str).value_counts().head(5)
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_report(results: list[dict[str, Any]], report_dir: Path, source: str) -> tuple[Path, Path]:
    """Write ``validation_report.md`` and ``.json`` (atomic) and return their paths."""
    success = all(r["success"] for r in results)
    n_failed = sum(not r["success"] for r in results)
    lines = [
        "# Data validation report",
        "",
        f"Data: `{source}`",
        "",
        f"**Result: {'PASSED' if success else 'FAILED'}** "
        f"({len(results) - n_failed} of {len(results)} expectations met)",
        "",
        "| table | check | expectation | column | result | observed | values |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mark = "pass" if r["success"] else "**FAIL**"
        observed, values = (str(r[k]).replace("|", "\\|") for k in ("observed", "values"))
        lines.append(
            f"| {r['table']} | {r['check']} | {r['expectation']} | {r['column']} | {mark} | "
            f"{observed} | {values} |"
        )
    md_path, json_path = report_dir / "validation_report.md", report_dir / "validation_report.json"
    write_text_atomic(md_path, "\n".join(lines) + "\n")
    payload = {"success": success, "data": source, "n_failed": n_failed, "results": results}
    write_text_atomic(json_path, json.dumps(payload, indent=2) + "\n")
    return md_path, json_path


def validate(cfg: ValidateConfig) -> ValidationReport:
    """Validate ``cfg.processed_dir``; write the report; raise DataError if any check fails."""
    frames, shards, splits, config = build_tables(cfg)
    n_stored = int(shards["n_frames"].sum()) if len(shards) else 0
    tables = {
        "frames": (frames, frame_checks(cfg, splits, n_stored)),
        "shards": (shards, shard_checks(config)),
    }
    results = run_checks(tables)
    md_path, json_path = write_report(results, Path(cfg.report_dir), cfg.processed_dir)
    report = ValidationReport(all(r["success"] for r in results), results, md_path, json_path)
    if not report.success:
        raise DataError(
            f"{cfg.processed_dir}: data validation failed ({', '.join(report.failed)}); "
            f"see {md_path}"
        )
    return report
