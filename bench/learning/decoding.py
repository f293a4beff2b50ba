"""Score trained transformers under each decoding: per-scale val AbsRel and the benchmarks.

The same weights, three token choices (greedy argmax, the official 5-sample average,
the expected code embedding): how much of a model's error is its decoding. Run in a
pipeline checkout after ``dvc repro`` (it reads params.yaml, the feature cache, the
models and the benchmarks; it writes nothing but ``--out``)::

    python -m bench.learning.decoding --objectives depthart var_tf \\
        --out docs/learning/runs/decoding_default.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from depthcore.config import load_section
from depthcore.data.features import FeatureDataset
from depthcore.evaluation.run import EvaluateConfig, run_evaluation
from depthcore.evaluation.scales import ScalesConfig, validate_scales, var_scales
from depthcore.io import write_text_atomic
from depthcore.models.checkpoint import load_model
from depthcore.models.generate import DECODINGS, sampling_for
from depthcore.predict.predictor import load_depth_model


def score(
    objective: str, decoding: str, scales: ScalesConfig, evaluate: EvaluateConfig
) -> dict[str, Any]:
    """Per-scale val AbsRel (all val frames) and lsq AbsRel per benchmark of one model."""
    checkpoint = Path(scales.models_dir) / objective / "model.safetensors"
    sampling = sampling_for(decoding, evaluate.seed)
    loaded = load_model(checkpoint, map_location="cpu")
    val = FeatureDataset(
        Path(scales.features_dir) / f"{scales.split}.h5",
        fields=("prefix", "rgb", "depth", "mask"),
    )
    labels = [f"{pn}x{pn}" for pn in loaded.vae.v_patch_nums]
    per_scale = validate_scales(
        var_scales(loaded.vae.eval(), loaded.var.eval(), "cpu", sampling),
        labels,
        val,
        space=str(val.attrs.get("space")),
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = load_depth_model(str(checkpoint), seed=evaluate.seed, sampling=sampling)
        metrics = run_evaluation(evaluate, model, str(checkpoint), tmp)
    bench = {
        name: round(float(m["lsq"]["abs_rel"]), 4) for name, m in metrics.items() if "lsq" in m
    }
    return {
        "val_abs_rel_per_scale": [round(v, 4) for v in per_scale],
        "refinement_gain": round((per_scale[0] - per_scale[-1]) / per_scale[0], 4),
        "benchmarks_abs_rel_lsq": bench,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--objectives", nargs="+", default=["depthart", "var_tf"])
    ap.add_argument("--decodings", nargs="+", default=list(DECODINGS), choices=DECODINGS)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    scales = load_section("scales", ScalesConfig, args.params)
    evaluate = load_section("evaluate", EvaluateConfig, args.params)
    result: dict[str, Any] = {"params": args.params}
    for objective in args.objectives:
        result[objective] = {}
        for decoding in args.decodings:
            result[objective][decoding] = score(objective, decoding, scales, evaluate)
            print(objective, decoding, json.dumps(result[objective][decoding]), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(args.out), json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
