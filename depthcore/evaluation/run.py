"""Zero-shot evaluation of a depth predictor on the benchmark readers.

:func:`evaluate` runs batched inference, resamples every prediction to its ground
truth, aligns it with each configured convention that applies to the model's space
(:mod:`depthcore.alignment`; ``median`` only for ``scale_depth``/``depth``
models, otherwise left out and recorded as not applicable with the reason), scores it
(:mod:`depthcore.evaluation.metrics`, plus the iBims-1 planarity and boundary errors
where a sample carries the annotations), and writes ``metrics.json``,
``per_image.csv`` and ``panels/*.png`` (:mod:`depthcore.evaluation.outputs`).
Benchmark numbers are means over images; planarity errors are pooled over all scored
planes, as the iBims-1 tools do.

Model input and output, one convention for training, evaluation and prediction: the
predictor stretches the RGB frame to its square input by area resampling
(:func:`depthcore.data.transforms.resize_rgb`, the resize the features stage applies
to training frames; checkpoints record it as ``input_fit``) and returns an S x S map in
its normalised space. That map is resampled to the ground truth's H x W by bilinear
interpolation with half-pixel centres (``align_corners=False``), in the model's space,
before alignment; the ground truth itself is never resampled. That is the ``native`` protocol;
``evaluate.protocol: paper`` scores as the official DepthART evaluation does instead
(:mod:`depthcore.evaluation.protocol`).

Determinism: :func:`run_evaluation` fixes torch's thread count (``evaluate.num_threads``),
turns on ``torch.use_deterministic_algorithms`` and seeds the predictor, so the same
params on the same machine give byte-identical metrics; the settings are recorded in
``evaluate_config.json``. Another machine (CPU instruction set, BLAS build, GPU) may
differ in the last digits of float sums, so compare across machines with the CIs.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from depthcore.alignment import (
    align_lsq,
    align_median,
    median_not_applicable,
    median_relative_depth,
)
from depthcore.config import ConfigError, frozen, param, to_dict
from depthcore.data.benchmarks.registry import make_reader
from depthcore.errors import DataError, DepthcoreError
from depthcore.evaluation.metrics import DEPTH_METRICS, compute_metrics
from depthcore.evaluation.outputs import write_outputs
from depthcore.evaluation.planarity import boundary_errors, planarity
from depthcore.evaluation.protocol import (
    PAPER_BENCHMARKS,
    PAPER_METRIC_NAMES,
    PaperReader,
    Protocol,
    align_median_paper,
    paper_metrics,
    paper_protocol_problem,
    paper_upsample,
    upsample_bilinear,
)
from depthcore.io import write_text_atomic
from depthcore.models.references import DepthModel
from depthcore.spaces import SPACES

log = logging.getLogger(__name__)

Alignment = Literal["lsq", "median"]


@frozen
class BenchmarkConfig:
    """Where one benchmark lives and how much of it to read.

    ``max_images`` 0 reads all frames; ``crop`` is passed to readers that offer
    crops (NYUv2: ``border8`` | ``eigen`` | ``none``) and left out when null.
    ``format`` names the reader when the benchmark's name is not one (``folder``:
    your own data, see depthcore.data.folder); ``split`` limits a folder dataset to
    the frames of that split.
    """

    root: str
    max_images: int = param(0, ge=0)
    crop: str | None = None
    format: str | None = None
    split: str | None = None


@frozen
class EvaluateConfig:
    """The ``evaluate`` section of params.yaml."""

    benchmarks: dict[str, BenchmarkConfig] = dataclasses.field(default_factory=dict)
    alignments: tuple[Alignment, ...] = ("lsq", "median")
    batch_size: int = param(4, gt=0)
    num_panels: int = param(2, ge=0)
    # torch intra-op threads, fixed so results do not depend on the host (no 0 = "all")
    num_threads: int = param(1, ge=1)
    seed: int = 0  # the predictor's sampling seed
    # token choice at each scale: expected (default: deterministic, the limit of the
    # official averaging), sample (the official top-k 900 / top-p 0.9 / 5 samples), greedy
    decoding: Literal["greedy", "sample", "expected"] = "expected"
    # native: score at each ground truth's own size (ours); paper: the official DepthART
    # evaluation (GT resized per benchmark, its crops, median alignment, its D1; protocol.py)
    protocol: Protocol = "native"

    def __post_init__(self) -> None:
        if not self.alignments:
            raise ValueError("alignments must name at least one of lsq, median")
        if self.protocol == "paper":
            benches = {name: (b.format, b.crop) for name, b in self.benchmarks.items()}
            problem = paper_protocol_problem(self.alignments, benches)
            if problem is not None:
                raise ValueError(problem)


def applicable_alignments(
    alignments: Iterable[str], space: str
) -> tuple[list[str], dict[str, str]]:
    """``(alignments to run, {alignment: why not applicable})`` for a model in ``space``."""
    run, skipped = [], {}
    for alignment in alignments:
        reason = median_not_applicable(space) if alignment == "median" else None
        if reason is None:
            run.append(alignment)
        else:
            skipped[alignment] = reason
    return run, skipped


def align(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    space: str,
    alignment: str,
    min_depth: float,
    max_depth: float,
) -> np.ndarray:
    """Aligned depth of ``pred`` (in ``space``) by the named convention (see alignment.py)."""
    if alignment == "lsq":
        return align_lsq(pred, gt, mask, space, min_depth, max_depth)
    if alignment == "median":
        return align_median(median_relative_depth(pred, space), gt, mask, min_depth, max_depth)
    raise ValueError(f"unknown alignment {alignment!r}; expected 'lsq' or 'median'")


def _batches(samples: Iterable[Any], batch_size: int) -> Iterator[list[Any]]:
    """Consecutive samples of equal image size, at most ``batch_size`` at a time."""
    batch: list[Any] = []
    for sample in samples:
        if batch and (len(batch) == batch_size or batch[0].rgb_HW3.shape != sample.rgb_HW3.shape):
            yield batch
            batch = []
        batch.append(sample)
    if batch:
        yield batch


def _predict(
    model: DepthModel, batch: list[Any], bench: str, protocol: str = "native"
) -> np.ndarray:
    rgb_BHW3 = np.stack([s.rgb_HW3 for s in batch])
    pred_BHW = np.asarray(model.predict_batch(rgb_BHW3))
    if pred_BHW.ndim != 3 or pred_BHW.shape[0] != len(batch):
        raise DepthcoreError(
            f"{bench}: predict_batch returned shape {pred_BHW.shape} for {len(batch)} images"
        )
    if not np.all(np.isfinite(pred_BHW)):
        names = ", ".join(s.name for s in batch)
        raise DepthcoreError(f"{bench}: non-finite prediction for frame(s) {names}")
    H, W = batch[0].depth_HW.shape
    upsample = paper_upsample if protocol == "paper" else upsample_bilinear
    return upsample(pred_BHW, H, W)


def score_sample(
    sample: Any,
    pred_HW: np.ndarray,
    space: str,
    alignment: str,
    min_depth: float,
    max_depth: float,
    protocol: str = "native",
) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
    """Align and score one frame: ``(aligned depth, metrics, per-plane pe_fla/pe_ori (2, P))``.

    ``protocol`` paper: the official scale-only median (no range clip) and metrics.
    """
    gt, valid = sample.depth_HW, sample.valid_HW
    if protocol == "paper":
        aligned = align_median_paper(median_relative_depth(pred_HW, space), gt, valid)
        row = paper_metrics(aligned, gt, valid)
    else:
        aligned = align(pred_HW, gt, valid, space, alignment, min_depth, max_depth)
        row = compute_metrics(aligned, gt, valid)
    planes_2P = np.zeros((2, 0))
    if sample.plane_masks is not None and sample.intrinsics_33 is not None:
        planes_2P = np.stack(
            planarity(
                aligned,
                gt,
                sample.plane_masks,
                sample.plane_normals,
                sample.intrinsics_33,
                valid,
            )
        )
        if planes_2P.shape[1]:
            row["pe_fla"], row["pe_ori"] = (float(v) for v in _nanmean_rows(planes_2P))
    if sample.edges_HW is not None:
        row["dbe_acc"], row["dbe_com"] = boundary_errors(aligned, sample.edges_HW, None)
    return aligned, row, planes_2P


def _nanmean_rows(values_RN: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN; NaN (without a warning) for an all-NaN row."""
    finite_RN = np.isfinite(values_RN)
    count_R = finite_RN.sum(axis=1)
    total_R = np.where(finite_RN, values_RN, 0.0).sum(axis=1)
    return np.where(count_R > 0, total_R / np.maximum(count_R, 1), np.nan)


def _summarise(rows: list[dict[str, float]], planes: list[np.ndarray]) -> dict[str, Any]:
    """Benchmark means: depth metrics and DBE over images, planarity pooled over planes."""
    summary: dict[str, Any] = {}
    for metric in DEPTH_METRICS + ("mae", "dbe_acc", "dbe_com"):
        values = np.array([r[metric] for r in rows if metric in r], dtype=np.float64)
        if values.size:
            summary[metric] = float(_nanmean_rows(values[None])[0])
    all_planes_2P = np.concatenate(planes, axis=1) if planes else np.zeros((2, 0))
    if all_planes_2P.shape[1]:
        summary["pe_fla"], summary["pe_ori"] = (float(v) for v in _nanmean_rows(all_planes_2P))
        summary["num_planes"] = int(np.isfinite(all_planes_2P[0]).sum())
    summary["num_images"] = len(rows)
    return summary


def evaluate(
    model: DepthModel,
    benchmarks: Mapping[str, Iterable[Any]],
    cfg: EvaluateConfig,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Score ``model`` on every benchmark reader; write metrics.json, per_image.csv, panels/.

    ``benchmarks`` maps a name to a reader (an iterable of ``BenchmarkSample``
    with attributes ``min_depth``/``max_depth``). Returns
    ``{benchmark: {alignment: {metric: value, num_images: n}}}`` for the alignments
    that apply to the model's space (:func:`applicable_alignments`); metrics.json holds
    the same without the NaN entries (metrics that could not be computed).
    Nothing is written unless every benchmark was scored.
    """
    space = getattr(model, "space", None)
    if space not in SPACES:
        raise DepthcoreError(f"model space {space!r} is not one of {list(SPACES)}")
    alignments, skipped = applicable_alignments(cfg.alignments, space)
    for alignment, reason in skipped.items():
        log.warning("%s alignment not applicable: %s", alignment, reason)
    if not alignments:
        raise DepthcoreError(f"no configured alignment applies to a {space} model: {skipped}")
    cfg = dataclasses.replace(cfg, alignments=tuple(alignments))
    results: dict[str, Any] = {}
    csv_rows: list[dict[str, Any]] = []
    panel_jobs: list[tuple[str, Any, np.ndarray]] = []
    for bench, reader in benchmarks.items():
        bench_cfg = cfg.benchmarks.get(bench)
        limit = bench_cfg.max_images if bench_cfg is not None and bench_cfg.max_images else None
        results[bench] = _evaluate_benchmark(model, bench, reader, limit, cfg, csv_rows, panel_jobs)
        log.info("%s: %s", bench, _brief(results[bench]))
    write_outputs(Path(out_dir), results, csv_rows, panel_jobs, cfg.alignments[0])
    return results


def _evaluate_benchmark(
    model: DepthModel,
    bench: str,
    reader: Iterable[Any],
    limit: int | None,
    cfg: EvaluateConfig,
    csv_rows: list[dict[str, Any]],
    panel_jobs: list[tuple[str, Any, np.ndarray]],
) -> dict[str, Any]:
    """Score the first ``limit`` frames of one reader; append its CSV rows and panels."""
    min_depth, max_depth = float(reader.min_depth), float(reader.max_depth)
    total = len(reader) if hasattr(reader, "__len__") else limit
    if total is not None and limit is not None:
        total = min(total, limit)
    rows: dict[str, list[dict[str, float]]] = {a: [] for a in cfg.alignments}
    planes: dict[str, list[np.ndarray]] = {a: [] for a in cfg.alignments}
    index = 0
    samples = itertools.islice(reader, limit)
    with tqdm(total=total, desc=f"evaluate {bench}", unit="img", leave=False) as bar:
        for batch in _batches(samples, cfg.batch_size):
            preds = _predict(model, batch, bench, cfg.protocol)
            for sample, pred_HW in zip(batch, preds, strict=True):
                if not sample.valid_HW.any():
                    raise DataError(f"{bench} frame {sample.name}: no valid ground-truth pixel")
                for k, alignment in enumerate(cfg.alignments):
                    aligned, row, planes_2P = score_sample(
                        sample, pred_HW, model.space, alignment, min_depth, max_depth, cfg.protocol
                    )
                    rows[alignment].append(row)
                    planes[alignment].append(planes_2P)
                    ident = {"benchmark": bench, "index": index, "name": sample.name}
                    csv_rows.append(ident | {"alignment": alignment} | row)
                    if k == 0 and index < cfg.num_panels:
                        panel_jobs.append((f"{bench}_{index:03d}", sample, aligned))
                index += 1
                bar.update(1)
    if index == 0:
        raise DataError(f"benchmark {bench}: no frames to evaluate")
    return {a: _summarise(rows[a], planes[a]) for a in cfg.alignments}


def _brief(bench_result: Mapping[str, Mapping[str, Any]]) -> str:
    n = next(iter(bench_result.values()))["num_images"]
    return f"{n} images, " + "; ".join(
        f"{a}: abs_rel {r['abs_rel']:.4f} delta1 {r['delta1']:.4f}" for a, r in bench_result.items()
    )


def open_benchmarks(cfg: EvaluateConfig) -> dict[str, Any]:
    """A reader per configured benchmark (``make_reader(name, root, format=, max_items=, ...)``).

    Under ``protocol: paper`` each reader gets the official crop and depth and its samples
    the official ground-truth size (:class:`~depthcore.evaluation.protocol.PaperReader`).
    """
    readers: dict[str, Any] = {}
    for name, bench in cfg.benchmarks.items():
        kwargs: dict[str, Any] = {}
        if cfg.protocol == "paper":
            kwargs.update(PAPER_BENCHMARKS[name].reader_kwargs)
        if bench.max_images:
            kwargs["max_items"] = bench.max_images
        if bench.crop is not None:
            kwargs["crop"] = bench.crop
        if bench.split is not None:
            kwargs["split"] = bench.split
        try:
            readers[name] = make_reader(name, bench.root, format=bench.format, **kwargs)
        except DepthcoreError:
            raise
        except ValueError as exc:  # an option value the reader refuses
            raise ConfigError(f"evaluate.benchmarks.{name}: {exc}") from exc
        except TypeError as exc:  # an option (crop, split) this reader does not have
            given = ", ".join(k for k in ("crop", "split") if getattr(bench, k) is not None)
            raise ConfigError(
                f"evaluate.benchmarks.{name}: the {name} reader takes no such option "
                f"(given: {given or 'none'})"
            ) from exc
        if cfg.protocol == "paper":
            readers[name] = PaperReader(readers[name], name)
    return readers


def run_evaluation(
    cfg: EvaluateConfig, model: DepthModel, model_spec: str, out_dir: str | Path
) -> dict[str, Any]:
    """The evaluate stage: fix the run's determinism, open the readers, evaluate ``model``.

    The resolved config, the model spec, the alignments left out (with the reason),
    the model's input preprocessing and the determinism settings are saved beside the
    metrics (``evaluate_config.json``) so a results folder says what produced it.
    """
    if not cfg.benchmarks:
        raise DepthcoreError("evaluate.benchmarks is empty: nothing to evaluate")
    determinism = make_deterministic(cfg.num_threads, cfg.seed)
    results = evaluate(model, open_benchmarks(cfg), cfg, out_dir)
    _, skipped = applicable_alignments(cfg.alignments, model.space)
    record = {
        "model": model_spec,
        "space": model.space,
        "input": getattr(model, "input_record", lambda: {"fit": "none (reference predictor)"})(),
        "alignments_not_applicable": skipped,
        "protocol": cfg.protocol,
        "official_metric_names": PAPER_METRIC_NAMES if cfg.protocol == "paper" else {},
        "determinism": determinism,
        "evaluate": to_dict(cfg),
    }
    write_text_atomic(Path(out_dir) / "evaluate_config.json", json.dumps(record, indent=2) + "\n")
    return results


def make_deterministic(num_threads: int, seed: int) -> dict[str, Any]:
    """Fix torch's threads, deterministic kernels and seeds for this process; return the record.

    ``warn_only``: an op without a deterministic implementation warns instead of failing
    (none is used on CPU by the tiny model; on CUDA set ``CUBLAS_WORKSPACE_CONFIG``).
    """
    torch.set_num_threads(num_threads)
    _use_deterministic_kernels()
    torch.manual_seed(seed)
    np.random.seed(seed)
    return {
        "num_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "seed": seed,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def _use_deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without importing Inductor.

    torch's function also turns on Inductor's deterministic mode, and imports
    ``torch._inductor.config`` to do so: torch._dynamo and Inductor, ~1.5-2.3 s of a
    2-core CPU, in a stage that compiles nothing. The kernel flag is what evaluation
    needs; Inductor's is set as well where Inductor is already loaded (a compiled model).
    """
    torch._C._set_deterministic_algorithms(True, warn_only=True)  # what the public one sets
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        inductor_config.deterministic = True


__all__ = [
    "BenchmarkConfig",
    "EvaluateConfig",
    "align",
    "applicable_alignments",
    "make_deterministic",
    "evaluate",
    "open_benchmarks",
    "run_evaluation",
    "score_sample",
    "upsample_bilinear",
]
