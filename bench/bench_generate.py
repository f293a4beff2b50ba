"""Generation seconds per batch: ours (reference, fp32 fast path, bf16) beside the official VAR.

Ours: image encode + image-prefix pass + all depth scales (top-k 900, top-p 0.9,
5 samples per token) + decode. Official: FoundationVision/VAR's
``autoregressive_infer_cfg`` (classifier-free guidance, so a batch of 2B through the
transformer, top-k 900, top-p 0.95, decode included) on the same random weights,
loaded key for key from ours. The official code is never imported by the package:
fetch it yourself and pass its folder; it is only imported here, when given.

    git clone https://github.com/FoundationVision/VAR /tmp/var_official
    python bench/bench_generate.py --official-path /tmp/var_official --batch 1 16 --repeats 3

Variants: ``reference`` (the models as loaded, fp32), ``fp32`` (after
``prepare_for_inference``: channels-last VQ-VAE, identical outputs) and ``bf16``
(bf16 transformer weights and bf16 autocast for the VQ-VAE convs). Medians of
``--repeats`` timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

from depthcore.models import MODEL_CONFIGS, create_model, image_prefix
from depthcore.models.generate import SamplingConfig, encode_image, generate, prepare_for_inference

OFFICIAL_TOP_P = 0.95


def load_official(path: Path, vae: torch.nn.Module, var: torch.nn.Module):
    """The official (vae, var) for d16, holding a copy of our weights (strict key match)."""
    if "huggingface_hub" not in sys.modules:
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:  # only a base class for hub uploads; not used for inference
            stub = types.ModuleType("huggingface_hub")
            stub.PyTorchModelHubMixin = type("PyTorchModelHubMixin", (), {})
            sys.modules["huggingface_hub"] = stub
    sys.path.insert(0, str(path))
    saved = {cls: cls.__dict__.get("reset_parameters") for cls in _patched_layers()}
    try:
        from models import build_vae_var  # the official package, from ``path``

        off_vae, off_var = build_vae_var(
            device="cpu", depth=var.depth, flash_if_available=False, fused_if_available=False
        )
    finally:  # the official factory patches torch layer classes for the whole process
        for cls, fn in saved.items():
            if fn is not None:
                cls.reset_parameters = fn
            elif "reset_parameters" in cls.__dict__:  # was inherited: drop the patch
                delattr(cls, "reset_parameters")
    off_vae.load_state_dict(vae.state_dict(), strict=True)
    off_var.load_state_dict(var.state_dict(), strict=True)
    return off_vae.eval(), off_var.eval()


def _patched_layers() -> tuple[type, ...]:
    nn = torch.nn
    return (nn.Linear, nn.LayerNorm, nn.BatchNorm2d, nn.SyncBatchNorm, nn.Conv1d, nn.Conv2d,
            nn.ConvTranspose1d, nn.ConvTranspose2d)  # fmt: skip


def build_samplers(args: argparse.Namespace) -> dict[str, Callable[[torch.Tensor], object]]:
    """One callable per sampler, rgb batch -> depth (ours) or image (official), same weights.

    Each of ours holds its own prepared copy of the models, so the samplers can be timed
    in interleaved rounds (a fair comparison on a machine whose load changes).
    """
    torch.manual_seed(0)
    vae, var = create_model(args.model)
    vae, var = vae.eval().requires_grad_(False), var.eval().requires_grad_(False)
    sampling = SamplingConfig()
    samplers: dict[str, Callable[[torch.Tensor], object]] = {}
    if args.official_path is not None:
        _, off_var = load_official(args.official_path, vae, var)
        gen = torch.Generator().manual_seed(0)
        labels = torch.randint(0, 1000, (max(args.batch),), generator=gen)
        samplers["official"] = lambda rgb: off_var.autoregressive_infer_cfg(
            rgb.shape[0],
            labels[: rgb.shape[0]],
            g_seed=0,
            cfg=1.5,
            top_k=sampling.top_k,
            top_p=OFFICIAL_TOP_P,
        )
    if "reference" in args.variants:
        samplers["reference"] = lambda rgb: generate(
            vae, var, image_prefix(vae, rgb), sampling=sampling, rgb_B3HW=rgb
        )
    for variant in ("fp32", "bf16"):
        if variant not in args.variants:
            continue
        dtype = torch.bfloat16 if variant == "bf16" else None
        vae_p = copy.deepcopy(vae)
        var_p = var if dtype is None else copy.deepcopy(var)  # fp32 shares the transformer
        prepare_for_inference(vae_p, var_p, dtype)
        samplers[variant] = lambda rgb, v=vae_p, t=var_p, d=dtype: generate(
            v, t, encode_image(v, rgb, d), sampling=sampling, rgb_B3HW=rgb
        )
    return samplers


def time_interleaved(
    samplers: dict[str, Callable[[torch.Tensor], object]],
    rgb: torch.Tensor,
    repeats: int,
    warmup: bool,
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of every sampler on ``rgb`` over ``repeats`` interleaved rounds.

    CPU seconds (``time.process_time``, all threads of this process) are the robust
    figure on a shared machine: wall time also counts the seconds other processes
    held the cores. With one thread they measure the work done.
    """
    if warmup:
        for fn in samplers.values():
            fn(rgb)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in samplers}
    for _ in range(repeats):
        for name, fn in samplers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn(rgb)
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="d16", choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official-path", type=Path, default=None)
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up call")
    parser.add_argument(
        "--variants", nargs="+", default=["reference", "fp32", "bf16"],
        choices=["reference", "fp32", "bf16"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.official_path and args.model != "d16":
        parser.error("the official sampler is built with the d16 sizes only")
    torch.set_num_threads(args.threads)
    samplers = build_samplers(args)
    size = MODEL_CONFIGS[args.model].image_size
    print(
        f"model {args.model} {size} px, {args.threads} threads, median of {args.repeats} "
        f"interleaved rounds; ours: top-k 900, top-p 0.9, 5 samples/token; "
        f"official: CFG (2B rows), top-k 900, top-p {OFFICIAL_TOP_P}"
    )
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for B in args.batch:
        rgb = torch.rand(B, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
        for name, runs in time_interleaved(samplers, rgb, args.repeats, not args.no_warmup).items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            results[name, B] = (wall, cpu)
            print(f"batch {B:2d} {name:9s}: wall {wall:7.2f} s, CPU {cpu:7.2f} s  (wall, CPU) runs "
                  + " ".join(f"({w:.2f}, {c:.2f})" for w, c in runs), flush=True)  # fmt: skip
    print_table(results, args.batch, "official" in samplers)


def print_table(
    results: dict[tuple[str, int], tuple[float, float]], batches: list[int], official: bool
) -> None:
    """Markdown table: seconds per batch (wall and CPU) and the speed-up over the official."""
    names = ["official"] * official + ["reference", "fp32", "bf16"]
    print("| batch | sampler | wall s | CPU s | CPU s / image | speed-up vs official (CPU) |")
    print("|---:|---|---:|---:|---:|---:|")
    for B in batches:
        for name in names:
            if (name, B) not in results:
                continue
            wall, cpu = results[name, B]
            ratio = f"{results['official', B][1] / cpu:.2f}x" if official else "-"
            print(f"| {B} | {name} | {wall:.2f} | {cpu:.2f} | {cpu / B:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
