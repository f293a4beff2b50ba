"""Speed and memory of the model library: figures to read, not assertions.

Prints, for one registered model (default ``tiny``) on one device (default CPU):
ms per training step for DepthART and VAR teacher forcing and their ratio,
inference ms per image with and without the KV cache and their ratio, and the
peak memory (process peak RSS on CPU, which includes ~0.7 GiB for importing
torch, or ``max_memory_allocated`` on CUDA).

    python bench/bench_model.py --model tiny --batch 16 --steps 5 --threads 2
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import torch

from depthcore.models import MODEL_CONFIGS, create_model, image_prefix
from depthcore.models.generate import GREEDY, SamplingConfig, generate
from depthcore.training.objectives import OBJECTIVES


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time_ms(fn: Callable[[], object], steps: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cfg = MODEL_CONFIGS[args.model]
    vae, var = create_model(args.model)
    vae, var = vae.to(device).eval().requires_grad_(False), var.to(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    size, B = cfg.image_size, args.batch
    rgb = (torch.rand(B, 3, size, size, generator=gen) * 2 - 1).to(device)
    depth3 = rgb.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    prefix = image_prefix(vae, rgb)
    with torch.no_grad():
        fD = vae.encode_features(depth3)
    opt = torch.optim.AdamW(var.parameters(), lr=1e-4)
    print(f"peak memory after import and set-up: {_peak_mib(device):.0f} MiB")
    n_params = sum(p.numel() for p in var.parameters()) / 1e6
    print(
        f"model {args.model}: {n_params:.2f}M transformer params, L={var.L} (+{var.L} prefix), "
        f"batch {B}, {args.threads} threads, device {device}"
    )

    step_ms = {}
    for name, objective in OBJECTIVES.items():

        def step(objective=objective) -> None:
            out = objective(vae, var, prefix, fD, rgb_B3HW=rgb)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()

        step_ms[name] = _time_ms(step, args.steps, device)
        print(
            f"train step {name:9s}: {step_ms[name]:8.1f} ms/step "
            f"({step_ms[name] / B:6.1f} ms/image)  peak {_peak_mib(device):7.0f} MiB"
        )
    print(f"DepthART / VAR-TF step time ratio: {step_ms['depthart'] / step_ms['var_tf']:.2f}")

    var.eval()
    infer_ms = {}
    for use_cache in (True, False):
        infer_ms[use_cache] = (
            _time_ms(
                lambda use_cache=use_cache: generate(
                    vae, var, prefix, sampling=GREEDY, use_cache=use_cache, rgb_B3HW=rgb
                ),
                args.steps,
                device,
            )
            / B
        )
        label = "with KV cache" if use_cache else "no cache     "
        print(
            f"inference greedy {label}: {infer_ms[use_cache]:7.2f} ms/image  "
            f"peak {_peak_mib(device):7.0f} MiB"
        )
    print(f"no-cache / cache inference time ratio: {infer_ms[False] / infer_ms[True]:.2f}")
    sampled = SamplingConfig()
    ms = (
        _time_ms(
            lambda: generate(vae, var, prefix, sampling=sampled, rgb_B3HW=rgb), args.steps, device
        )
        / B
    )
    print(
        f"inference sampled (top_k {sampled.top_k}, top_p {sampled.top_p}, "
        f"{sampled.num_samples} samples), cache: {ms:7.2f} ms/image"
    )


if __name__ == "__main__":
    main()
