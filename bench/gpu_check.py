"""The figures ``bench/gpu_check.sh`` prints: d16 (or tiny) speed and memory per precision.

For each precision (fp32 with TF32 matmuls on CUDA, bf16 autocast) and objective: ms
per optimizer step, depth tokens/s (batch x L / step time) and peak memory; then greedy
generation ms/image with the KV cache at each generation batch, without it, and the
speed-up. Figures to read, not assertions.

    python -m bench.gpu_check --model d16 --device cuda --batch 16
    python -m bench.gpu_check --model tiny --device cpu --batch 4 --steps 2   # --quick
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from bench.bench_model import _peak_mib, _time_ms
from depthcore.models import MODEL_CONFIGS, create_model, image_prefix
from depthcore.models.generate import GREEDY, generate
from depthcore.training.objectives import OBJECTIVES
from depthcore.training.precision import (
    PRECISIONS,
    autocast_for,
    enable_tf32,
    prepare_transformer,
    resolve_precision,
)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


OOM: list[str] = []  # labels of the figures that ran out of memory (main exits 1 if any)


def _measure(label: str, fn: Callable[[], None], steps: int, device: torch.device) -> float | None:
    """ms per call of ``fn``; on CUDA out-of-memory prints why and returns None (see main)."""
    try:
        return _time_ms(fn, steps, device)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        print(f"{label} OUT OF MEMORY (lower --batch, or use train.grad_checkpointing)")
        OOM.append(label)
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="d16", choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=16, help="training batch")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per figure")
    parser.add_argument("--gen-batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--grad-checkpointing", action="store_true", help="as train.*")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    enable_tf32(device)
    torch.manual_seed(0)
    start = time.perf_counter()
    vae, var = create_model(args.model)
    vae, var = vae.to(device).eval().requires_grad_(False), var.to(device)
    size, B, L = MODEL_CONFIGS[args.model].image_size, args.batch, var.L
    gen = torch.Generator().manual_seed(0)
    rgb = (torch.rand(max(B, *args.gen_batches), 3, size, size, generator=gen) * 2 - 1).to(device)
    with torch.no_grad():
        prefix_all = image_prefix(vae, rgb)
        fD = vae.encode_features(rgb[:B].mean(1, keepdim=True).expand(-1, 3, -1, -1))
    prepare_transformer(var, compile=False, checkpointing=args.grad_checkpointing)
    opt = torch.optim.AdamW(var.parameters(), lr=1e-4, weight_decay=0.01)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"model {args.model} ({sum(p.numel() for p in var.parameters()) / 1e6:.1f}M params, "
        f"L={L}) at {size} px on {name}, grad checkpointing {args.grad_checkpointing}; "
        f"set-up {time.perf_counter() - start:.1f} s"
    )

    for precision in args.precisions:
        resolved = resolve_precision(precision, device)
        if precision == "auto" and resolved in args.precisions:  # measured already
            print(f"auto = {resolved} on this device: its figures are the {resolved} rows above")
            continue
        autocast = autocast_for(precision, device)
        for objective, loss_fn in OBJECTIVES.items():

            def step(loss_fn=loss_fn, autocast=autocast) -> None:
                with autocast():
                    out = loss_fn(vae, var, prefix_all[:B], fD, rgb_B3HW=rgb[:B])
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()

            var.train()
            _reset_peak(device)
            label = f"train {precision:4s} {objective:8s} batch {B:3d}:"
            ms = _measure(label, step, args.steps, device)
            if ms is not None:
                print(
                    f"{label} {ms:9.1f} ms/step  {B * L / ms * 1000:10.0f} tokens/s  "
                    f"peak {_peak_mib(device):8.0f} MiB"
                )
        var.eval()
        for gb in args.gen_batches:
            per_image = {}
            for use_cache in (True, False):

                def infer(gb=gb, use_cache=use_cache, autocast=autocast) -> None:
                    with autocast():
                        generate(
                            vae,
                            var,
                            prefix_all[:gb],
                            sampling=GREEDY,
                            use_cache=use_cache,
                            rgb_B3HW=rgb[:gb],
                        )

                _reset_peak(device)
                label = f"generate {precision:4s} batch {gb:3d} cache={use_cache}:"
                per_image[use_cache] = _measure(label, infer, args.steps, device)
            if None in per_image.values():
                continue
            per_image = {k: v / gb for k, v in per_image.items()}
            print(
                f"generate {precision:4s} batch {gb:3d}: {per_image[True]:8.2f} ms/image with KV "
                f"cache, {per_image[False]:8.2f} without; speed-up "
                f"{per_image[False] / per_image[True]:.2f}x  peak {_peak_mib(device):8.0f} MiB"
            )

    if OOM:
        raise SystemExit(f"{len(OOM)} figure(s) ran out of memory: {OOM}")


if __name__ == "__main__":
    main()
