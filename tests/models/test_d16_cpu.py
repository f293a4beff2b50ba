"""The paper's d16 model really trains and generates on CPU at 256 px (batch 1).

Random weights are written in the official checkpoint format (raw state_dicts with the
official keys) and read back through ``load_official_vae`` / ``load_official_var``, so
this is the path a run initialised from ``vae_ch160v4096z32.pth`` + ``var_d16.pth``
takes: one optimizer step per objective, then a KV-cached generation.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from depthcore.models import MODEL_CONFIGS, create_model, image_prefix
from depthcore.models.checkpoint import load_official_vae, load_official_var
from depthcore.models.generate import GREEDY, generate
from depthcore.training.objectives import OBJECTIVES


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``start``: CPU time is what a busy shared machine preserves."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _official_format_d16(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    vae, var = create_model("d16")
    vae_path, var_path = tmp_path / "vae_ch160v4096z32.pth", tmp_path / "var_d16.pth"
    torch.save(vae.state_dict(), vae_path)
    torch.save(var.state_dict(), var_path)
    return vae_path, var_path


@pytest.mark.slow
def test_d16_training_steps_and_cached_generation(tmp_path: Path) -> None:
    timings: dict[str, tuple[float, float]] = {}  # name -> (wall s, process CPU s)
    start = _clock()
    vae_path, var_path = _official_format_d16(tmp_path)
    vae = load_official_vae(vae_path).eval().requires_grad_(False)
    var = load_official_var(var_path)
    timings["build+save+load"] = _since(start)

    size = MODEL_CONFIGS["d16"].image_size
    gen = torch.Generator().manual_seed(0)
    rgb_B3HW = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
    depth_B3HW = rgb_B3HW.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    start = _clock()
    with torch.no_grad():
        prefix_BLC = image_prefix(vae, rgb_B3HW)
        fD_BChw = vae.encode_features(depth_B3HW)
    timings["encode"] = _since(start)
    assert prefix_BLC.shape == (1, var.L, vae.Cvae)

    opt = torch.optim.AdamW(var.parameters(), lr=1e-4, weight_decay=0.01)
    for name, objective in OBJECTIVES.items():
        before = var.head.weight.detach().clone()
        start = _clock()
        out = objective(vae, var, prefix_BLC, fD_BChw)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        grads = [p.grad for p in var.parameters() if p.grad is not None]
        assert torch.isfinite(out.loss), name
        assert len(grads) == sum(1 for p in var.parameters() if p.requires_grad), name
        assert all(bool(torch.isfinite(g).all()) for g in grads), name
        opt.step()
        timings[f"step {name}"] = _since(start)
        assert not torch.equal(before, var.head.weight), f"{name}: the optimizer step did nothing"

    var.eval()
    start = _clock()
    result = generate(vae, var, prefix_BLC, sampling=GREEDY, use_cache=True)
    timings["generate (KV cache)"] = _since(start)
    assert result.pred_B1HW.shape == (1, 1, size, size)
    assert torch.isfinite(result.pred_B1HW).all()
    print(
        "d16 CPU (wall / CPU s): "
        + ", ".join(f"{k} {w:.1f}/{c:.1f}" for k, (w, c) in timings.items())
    )
