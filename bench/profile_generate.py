"""Where generation's seconds go: a per-phase table for one registered model.

Phases are timed by wrapping the functions the generation path calls (nothing in the
package knows it is being timed): image encode (VQ-VAE encoder + quant_conv), image
tokens (the quantiser's multi-scale f_hats resized into the prefix), the prefix pass
(prefix + SOS through the transformer, filling the KV cache), each later scale's
cached step, token choice (top-k/top-p + sampling), f_hat updates and the decode.
Random weights in the official layout; figures are process CPU seconds (robust on a
shared machine; with ``--threads 1`` the work done), medians over ``--repeats`` runs.

    python bench/profile_generate.py --model d16 --batch 1 --repeats 3 --threads 1
    python bench/profile_generate.py --model d16 --precision bf16
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

import depthcore.models.generate as generation
from depthcore.models import MODEL_CONFIGS, create_model
from depthcore.models.generate import SamplingConfig, encode_image, generate, prepare_for_inference

Timings = dict[str, float]


def _timed(name: str, fn: Callable[..., Any], sink: Timings, key: Callable[..., str] | None = None):
    """``fn`` that adds its CPU time to ``sink[name]`` (or ``sink[key(*args)]``)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        out = fn(*args, **kwargs)
        label = key(*args) if key is not None else name
        sink[label] = sink.get(label, 0.0) + time.process_time() - start
        return out

    return wrapper


def instrument(vae: torch.nn.Module, var: torch.nn.Module, sink: Timings) -> None:
    """Wrap the generation path's functions so each call's seconds land in ``sink``."""
    vae.encode_features = _timed("image encode", vae.encode_features, sink)
    vae.quantize.f_to_fhats = _timed("image tokens (quantise)", vae.quantize.f_to_fhats, sink)
    var.start_cached = _timed("prefix pass + scale 1", var.start_cached, sink)
    var.step_cached = _timed(
        "", var.step_cached, sink, key=lambda si, *_: f"scale {si + 1} ({var.patch_nums[si]}^2)"
    )
    vae.get_next_autoregressive_input = _timed(
        "f_hat updates", vae.get_next_autoregressive_input, sink
    )
    generation.choose_tokens = _timed("token choice (top-k/top-p)", generation.choose_tokens, sink)
    vae.fhat_to_img = _timed("decode", vae.fhat_to_img, sink)


def profile(args: argparse.Namespace) -> tuple[list[str], dict[str, list[float]]]:
    """Per-phase seconds of ``args.repeats`` generations (after one warm-up)."""
    torch.manual_seed(0)
    vae, var = create_model(args.model)
    vae, var = vae.eval().requires_grad_(False), var.eval().requires_grad_(False)
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    if args.precision != "reference":
        prepare_for_inference(vae, var, dtype)
    size = MODEL_CONFIGS[args.model].image_size
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(args.batch, 3, size, size, generator=gen) * 2 - 1
    sampling = SamplingConfig(num_samples=args.samples)
    sink: Timings = {}
    instrument(vae, var, sink)
    runs: dict[str, list[float]] = defaultdict(list)
    order: list[str] = []
    for rep in range(args.repeats + 1):
        sink.clear()
        start = time.process_time()
        prefix = encode_image(vae, rgb, dtype=dtype)
        generate(vae, var, prefix, sampling=sampling, rgb_B3HW=rgb)
        total = time.process_time() - start
        if rep == 0:
            order = list(sink)
            continue
        for name, seconds in sink.items():
            runs[name].append(seconds)
        runs["other (glue)"].append(total - sum(sink.values()))
        runs["total"].append(total)
    return order + ["other (glue)", "total"], runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--samples", type=int, default=5, help="tokens drawn per position")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("reference", "fp32", "bf16"),
        help="reference: no inference preparation (channels-last) and fp32",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    order, runs = profile(args)
    total = statistics.median(runs["total"])
    print(
        f"model {args.model}, batch {args.batch}, {args.precision}, {args.samples} samples/token, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    print("| phase | CPU ms | share |")
    print("|---|---:|---:|")
    for name in order:
        ms = statistics.median(runs[name]) * 1000
        print(f"| {name} | {ms:.1f} | {ms / (total * 1000):.1%} |")


if __name__ == "__main__":
    main()
