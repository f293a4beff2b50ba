"""DepthART's training step against a teacher-forcing step at equal batch (CPU or CUDA).

One optimizer step (objective forward, backward, AdamW) per call, the two objectives
timed in interleaved rounds after one warm-up each; prints the median wall and process
CPU seconds (the robust figure on a shared machine; with one thread it is the work
done) and the DepthART / teacher-forcing ratio of each.

    python bench/bench_step.py --model tiny --batch 16 --repeats 5 --threads 1
    python bench/bench_step.py --model d16 --batch 1 --repeats 2 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from depthcore.models import MODEL_CONFIGS, create_model, image_prefix
from depthcore.training.objectives import OBJECTIVES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=sorted(MODEL_CONFIGS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vae, var = create_model(args.model)
    vae = vae.eval().requires_grad_(False)
    size = MODEL_CONFIGS[args.model].image_size
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(args.batch, 3, size, size, generator=gen) * 2 - 1
    prefix = image_prefix(vae, rgb)
    with torch.no_grad():
        fD = vae.encode_features(rgb.mean(1, keepdim=True).expand(-1, 3, -1, -1))
    opt = torch.optim.AdamW(var.parameters(), lr=1e-4)

    def step(name: str) -> None:
        out = OBJECTIVES[name](vae, var, prefix, fD, rgb_B3HW=rgb)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    names = ("depthart", "var_tf")
    for name in names:
        step(name)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            wall, cpu = time.perf_counter(), time.process_time()
            step(name)
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    wall = {n: statistics.median(w for w, _ in runs[n]) for n in names}
    cpu = {n: statistics.median(c for _, c in runs[n]) for n in names}
    print(
        f"model {args.model}, batch {args.batch}, {args.threads} threads, "
        f"median of {args.repeats} interleaved rounds"
    )
    for n in names:
        each = " ".join(f"{c:.2f}" for _, c in runs[n])
        print(f"{n:9s}: wall {wall[n]:8.3f} s, CPU {cpu[n]:8.3f} s per step (CPU runs {each})")
    print(
        f"DepthART / teacher forcing: {wall['depthart'] / wall['var_tf']:.2f} (wall), "
        f"{cpu['depthart'] / cpu['var_tf']:.2f} (CPU)"
    )


if __name__ == "__main__":
    main()
