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

Against the true peer, the official DepthART inference (bulatko/DepthART's
``DepthART.autoregressive_infer_cfg``: image prefix, top-k 900 / top-p 0.9, 5 samples
averaged per token, decode included), on one d16 DepthART file the official code writes
with its own seeded initialisation, which ours loads through ``load_model`` (the path
the released ``model.safetensors`` takes):

    git clone https://github.com/bulatko/DepthART /tmp/depthart_official
    python bench/bench_generate.py --official-depthart /tmp/depthart_official --batch 1 16

Before timing it checks the outputs under greedy decoding (the official sampler at top-k
1, see ``official/official_depthart.py``) on one image: fp32 must choose every token the
official chooses and decode within 1e-4; bf16, fed the official's tokens, must take the
same argmax at >= 90 % of every scale's positions. It exits 1 if not.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_model

from depthcore.models import MODEL_CONFIGS, create_model, image_prefix
from depthcore.models.checkpoint import load_model
from depthcore.models.generate import (
    GREEDY,
    SamplingConfig,
    autocast_for,
    decode_depth,
    encode_image,
    generate,
    prepare_for_inference,
    rollout,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "official"))
import official_depthart  # noqa: E402  (bench/official: reads the user's checkout)

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


def build_samplers(
    args: argparse.Namespace,
    vae: torch.nn.Module,
    var: torch.nn.Module,
    art: torch.nn.Module | None = None,
) -> dict[str, Callable[[torch.Tensor], object]]:
    """One callable per sampler, rgb batch -> depth (ours) or image (official), same weights.

    Each of ours holds its own prepared copy of the models, so the samplers can be timed
    in interleaved rounds (a fair comparison on a machine whose load changes).
    """
    sampling = SamplingConfig()
    samplers: dict[str, Callable[[torch.Tensor], object]] = {}
    if art is not None:  # the official DepthART inference: its own sampling settings
        samplers["official"] = lambda rgb: art.autoregressive_infer_cfg(rgb.shape[0], rgb)
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


def load_official_depthart(
    repo: Path,
) -> tuple[types.ModuleType, torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """(official package, official DepthART, our vae, our var): d16 with the official code's
    own seeded initialisation, written as the official release is and read back by
    ``load_model``."""
    with tempfile.TemporaryDirectory() as tmp:
        official = official_depthart.import_official(repo, Path(tmp))
        torch.manual_seed(official_depthart.SEED)
        art = official_depthart.build(official, official_depthart.D16, "DepthART").eval()
        art.requires_grad_(False)
        path = Path(tmp) / "model.safetensors"
        save_model(art, str(path))
        loaded = load_model(path)  # expects d16-depthart, as for the release
    return official, art, loaded.vae, loaded.var


def check_greedy(
    official: types.ModuleType,
    art: torch.nn.Module,
    vae: torch.nn.Module,
    var: torch.nn.Module,
    size: int,
) -> bool:
    """Greedy outputs of ours (prepared, fp32 and bf16) against the official on one image.

    fp32 must choose every token the official chooses and decode within 1e-4. bf16 is
    checked step by step: fed the official's tokens, its argmax must agree at >= 90 % of
    the positions of every scale (a free-running bf16 rollout on random weights, whose
    logits are nearly flat, drifts from the first near-tie on: printed, not asserted).
    """
    rgb = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad(), official_depthart.official_greedy(official) as chosen:
        theirs = official_depthart.official_depth(art, rgb)
    ok = True
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        v, t = copy.deepcopy(vae), copy.deepcopy(var)
        prepare_for_inference(v, t, dtype)
        with torch.no_grad():
            prefix = encode_image(v, rgb, dtype)
            out = rollout(v, t, prefix, GREEDY)
            ours = decode_depth(v, out.f_hat_BChw, dtype)
            with autocast_for(rgb.device, dtype):
                logits_BLV = t(prefix, v.idxBl_to_var_input(chosen))
        same = [(a == b).float().mean().item() for a, b in zip(out.idx_Bl, chosen, strict=True)]
        step = [
            (logits_BLV[:, b:e].argmax(-1) == idx).float().mean().item()
            for (b, e), idx in zip(t.begin_ends, chosen, strict=True)
        ]
        delta = (ours - theirs).abs()
        if dtype is None:
            passed = min(same) == 1.0 and delta.max().item() <= 1e-4
        else:
            passed = min(step) >= 0.9
        ok &= passed
        print(f"greedy {name}: free-running tokens equal per scale "
              + " ".join(f"{x:.3f}" for x in same)
              + f"; depth |delta| max {delta.max():.2e} mean {delta.mean():.2e}; "
              + "fed the official's tokens, argmax equal per scale "
              + " ".join(f"{x:.3f}" for x in step)
              + (": PASS" if passed else ": FAIL"), flush=True)  # fmt: skip
    return ok


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
    parser.add_argument("--official-path", type=Path, default=None, help="a VAR checkout")
    parser.add_argument(
        "--official-depthart", type=Path, default=None, help="a bulatko/DepthART git checkout"
    )
    parser.add_argument("--skip-check", action="store_true", help="no greedy output check")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up call")
    parser.add_argument(
        "--variants", nargs="+", default=["reference", "fp32", "bf16"],
        choices=["reference", "fp32", "bf16"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.official_path and args.model != "d16":
        parser.error("the official sampler is built with the d16 sizes only")
    if args.official_depthart and args.official_path:
        parser.error("give one official sampler: --official-path (VAR) or --official-depthart")
    if args.official_depthart:
        args.model = "d16-depthart"
        args.variants = [v for v in args.variants if v != "reference"]
    torch.set_num_threads(args.threads)
    size = MODEL_CONFIGS[args.model].image_size
    art = None
    if args.official_depthart:
        official, art, vae, var = load_official_depthart(args.official_depthart)
        if not args.skip_check and not check_greedy(official, art, vae, var, size):
            sys.exit(1)
    else:
        torch.manual_seed(0)
        vae, var = create_model(args.model)
    vae, var = vae.eval().requires_grad_(False), var.eval().requires_grad_(False)
    samplers = build_samplers(args, vae, var, art)
    print(
        f"model {args.model} {size} px, {args.threads} threads, median of {args.repeats} "
        f"interleaved rounds; ours: top-k 900, top-p 0.9, 5 samples/token; "
        + (f"official: CFG (2B rows), top-k 900, top-p {OFFICIAL_TOP_P}" if args.official_path
           else "official DepthART: top-k 900, top-p 0.9, 5 samples/token" if art else "")
    )  # fmt: skip
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
