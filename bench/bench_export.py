"""Speed of the two backends on the same model: torch (DepthPredictor) vs onnxruntime.

Writes a random-weight checkpoint of ``--model`` (default ``tiny``), exports it with
``depthart export`` (the export time is printed too), then times the model call alone
(``predict_batch`` on images already at the square input size; no file I/O) for each backend and
``--batch`` size: ms per image, median over ``--repeats``, wall and process CPU
seconds (the robust figure on a shared machine). Both run fp32 with ``--threads``
intra-op threads and the same decoding.

    python -m bench.bench_export --model tiny --batch 1 8 --threads 2 --decoding expected
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.bench_predict import median_of
from depthcore.export.onnx_export import export_onnx
from depthcore.models import MODEL_CONFIGS, create_model, resolve_config
from depthcore.models.checkpoint import save_model
from depthcore.models.generate import sampling_for
from depthcore.predict.onnx_backend import OnnxPredictor
from depthcore.predict.predictor import DepthPredictor


def median_ms(fn: Callable[[], object], repeats: int, per: int) -> tuple[float, float]:
    """Median (wall, CPU) milliseconds per item of ``repeats`` calls of ``fn`` (``per`` items)."""
    fn()  # warm-up: allocations, onnxruntime's first-run graph work
    wall, cpu = median_of(fn, repeats)
    return 1e3 * wall / per, 1e3 * cpu / per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decoding", choices=("greedy", "expected"), default="expected")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "model.safetensors"
        vae, var = create_model(args.model)
        cfg = resolve_config(args.model)
        save_model(checkpoint, vae, var, cfg, meta={"space": "sqrt_disparity"})
        start = time.perf_counter()
        folder = export_onnx(checkpoint, Path(tmp) / "onnx")
        print(f"export {args.model}: {time.perf_counter() - start:.1f} s wall")
        sampling = sampling_for(args.decoding)
        backends = {
            "torch": DepthPredictor.from_pretrained(checkpoint, sampling=sampling),
            "onnxruntime": OnnxPredictor(folder, sampling=sampling, threads=args.threads),
        }
        S = cfg.image_size
        for batch in args.batch:
            rng = np.random.default_rng(batch)
            rgb_BSS3 = rng.integers(0, 256, (batch, S, S, 3), dtype=np.uint8)
            for name, predictor in backends.items():
                wall, cpu = median_ms(
                    lambda p=predictor, x=rgb_BSS3: p.predict_batch(x),
                    args.repeats,
                    batch,
                )
                print(
                    f"{name:12s} {args.model} {args.decoding} batch {batch:3d}: "
                    f"{wall:8.2f} ms/image wall, {cpu:8.2f} ms/image CPU"
                )


if __name__ == "__main__":
    main()
