"""Precision and kernels: SDPA = the explicit formula, bf16 autocast, checkpointing, compile."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from depthcore.models.blocks import LayerKV, SelfAttention
from depthcore.training.objectives import OBJECTIVES
from depthcore.training.precision import (
    autocast_for,
    cpu_flags,
    enable_tf32,
    native_bf16,
    prepare_transformer,
    resolve_precision,
)
from tests.helpers.models import tiny_batch

SMALL_VAR = {"depth": 2, "embed_dim": 64, "num_heads": 2}


def _explicit_attention(attn: SelfAttention, x_BLC: torch.Tensor, bias: torch.Tensor | None):
    """softmax(q k^T * scale + bias) v written out, with VAR's L2-normalised q/k."""
    B, L, C = x_BLC.shape
    H = attn.num_heads
    w_q, w_k, w_v = attn.mat_qkv.weight.chunk(3, dim=0)
    q = (x_BLC @ w_q.T + attn.q_bias).view(B, L, H, -1).transpose(1, 2)
    k = (x_BLC @ w_k.T).view(B, L, H, -1).transpose(1, 2)
    v = (x_BLC @ w_v.T + attn.v_bias).view(B, L, H, -1).transpose(1, 2)
    if attn.attn_l2_norm:
        gain_1H11 = attn.scale_mul_1H11.clamp_max(math.log(100)).exp()
        q = q / q.norm(dim=-1, keepdim=True) * gain_1H11
        k = k / k.norm(dim=-1, keepdim=True)
    scores_BHLL = q @ k.transpose(-1, -2) * attn.scale
    if bias is not None:
        scores_BHLL = scores_BHLL + bias
    out_BHLc = scores_BHLL.softmax(dim=-1) @ v
    return attn.proj(out_BHLc.transpose(1, 2).reshape(B, L, C))


@pytest.mark.parametrize("l2_norm", [True, False])
def test_sdpa_attention_equals_explicit_formula(l2_norm: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    attn = SelfAttention(64, 4, 0.0, 0.0, l2_norm).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    x_BLC = torch.randn(2, 10, 64, generator=gen)
    causal_LL = torch.full((10, 10), -torch.inf).triu(1)
    with torch.no_grad():
        for bias in (None, causal_LL.view(1, 1, 10, 10)):
            torch.testing.assert_close(
                attn(x_BLC, bias), _explicit_attention(attn, x_BLC, bias), atol=1e-5, rtol=1e-5
            )


def test_kv_cached_attention_equals_explicit_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    attn = SelfAttention(32, 2, 0.0, 0.0, True).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        x_BLC = torch.randn(1, 7, 32, generator=gen)
        # block-causal: the first 3 tokens see each other, the last 4 see all 7
        bias = torch.zeros(1, 1, 7, 7)
        bias[..., :3, 3:] = -torch.inf
        cache = LayerKV()
        first = attn(x_BLC[:, :3], None, cache)
        second = attn(x_BLC[:, 3:], None, cache)
        expected = _explicit_attention(attn, x_BLC, bias)
    torch.testing.assert_close(torch.cat((first, second), 1), expected, atol=1e-5, rtol=1e-5)


def _loss_and_grads(var, vae, prefix, fD, objective: str, precision: str = "fp32"):
    var.zero_grad(set_to_none=True)
    with autocast_for(precision, prefix.device)():
        out = OBJECTIVES[objective](vae, var, prefix, fD)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in var.named_parameters()}


@pytest.mark.parametrize("objective", ["depthart", "var_tf"])
def test_bf16_autocast_on_cpu_keeps_fp32_master_weights(objective: str) -> None:
    vae, var, prefix, fD = tiny_batch(var=SMALL_VAR)
    loss32, _ = _loss_and_grads(var, vae, prefix, fD, objective)
    loss16, grads16 = _loss_and_grads(var, vae, prefix, fD, objective, "bf16")
    assert torch.isfinite(loss16)
    assert loss16.dtype == torch.float32
    assert abs(loss16.item() - loss32.item()) < 0.05 * loss32.item()
    assert loss16.item() != loss32.item()  # bf16 really ran
    assert all(p.dtype == torch.float32 for p in var.parameters())
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads16.values())


def test_tf32_is_switched_on_for_cuda_only() -> None:
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        enable_tf32(torch.device("cpu"))
        assert torch.get_float32_matmul_precision() == "highest"
        enable_tf32(torch.device("cuda"))  # only sets a flag; needs no device
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_auto_precision_is_bf16_only_where_the_cpu_runs_it_natively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the flag sets decide here, not a oneDNN cap in the environment (a CI run as an fp32
    # CPU sets one; test_a_onednn_isa_cap_below_bf16_makes_auto_fp32 covers it)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    cpu = torch.device("cpu")
    assert not native_bf16(cpu, frozenset({"avx2", "avx512f", "avx512bw"}))  # emulated: slower
    assert native_bf16(cpu, frozenset({"avx512f", "avx512_bf16"}))
    assert native_bf16(cpu, frozenset({"amx_bf16", "amx_tile"}))
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_bf16\n\n")
    assert cpu_flags(info) == {"fpu", "sse2", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    want = "bf16" if native_bf16(cpu) else "fp32"
    assert resolve_precision("auto", cpu) == want
    ctx = autocast_for("auto", cpu)()
    assert isinstance(ctx, torch.autocast) == (want == "bf16")


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="train.precision"):
        autocast_for("fp16", torch.device("cpu"))


@pytest.mark.parametrize("objective", ["depthart", "var_tf"])
def test_grad_checkpointing_gives_the_same_loss_and_grads(objective: str) -> None:
    vae, var, prefix, fD = tiny_batch(var=SMALL_VAR)
    var.train()
    loss, grads = _loss_and_grads(var, vae, prefix, fD, objective)
    prepare_transformer(var, compile=False, checkpointing=True)
    loss_ckpt, grads_ckpt = _loss_and_grads(var, vae, prefix, fD, objective)
    torch.testing.assert_close(loss_ckpt, loss, atol=0, rtol=0)
    for name, g in grads.items():
        torch.testing.assert_close(grads_ckpt[name], g, atol=1e-6, rtol=1e-5, msg=name)


def _compiled_matches_eager(backend: str) -> None:
    vae, var, prefix, fD = tiny_batch(var=SMALL_VAR)
    var.train()
    keys = list(var.state_dict())
    loss, grads = _loss_and_grads(var, vae, prefix, fD, "var_tf")
    prepare_transformer(var, compile=True, checkpointing=False, backend=backend)
    loss_c, grads_c = _loss_and_grads(var, vae, prefix, fD, "var_tf")
    assert list(var.state_dict()) == keys
    torch.testing.assert_close(loss_c, loss, atol=1e-5, rtol=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(grads_c[name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_compiled_transformer_matches_eager_and_keeps_state_dict_keys() -> None:
    """Graph capture of forward + backward (aot_eager: the traced graphs, no codegen)."""
    _compiled_matches_eager("aot_eager")


@pytest.mark.xfail(
    os.environ.get("ATEN_CPU_CAPABILITY", "").lower() == "avx2",
    reason="torch 2.14.1's inductor backward computes garbage (index_put_ out of bounds, or "
    "wrong gradients) with ATEN_CPU_CAPABILITY=avx2 on an AVX512 CPU, the cap "
    "bench/learning/repro_timing.py --fp32-cpu sets; a real AVX2-only CPU is untested",
    strict=False,
)
def test_inductor_compiled_transformer_matches_eager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``train.compile: true`` runs: inductor kernels (C++ on CPU; minutes to build).

    Built in a cache of its own: a kernel another run compiled under other CPU settings
    (``--fp32-cpu``'s ``ATEN_CPU_CAPABILITY=avx2``) was once reused from the shared
    ``/tmp/torchinductor_<user>`` and aborted the process.
    """
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    _compiled_matches_eager("inductor")
    assert any((tmp_path / "inductor").iterdir())  # the kernels were built here


@pytest.mark.gpu
def test_bf16_checkpointed_compiled_step_on_cuda() -> None:
    """What a GPU run with precision bf16, compile and checkpointing does, in one step."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    vae, var, prefix, fD = tiny_batch(var=SMALL_VAR)
    device = torch.device("cuda")
    vae, var, prefix, fD = vae.to(device), var.to(device).train(), prefix.to(device), fD.to(device)
    prepare_transformer(var, compile=True, checkpointing=True)
    opt = torch.optim.AdamW(var.parameters(), lr=1e-4)
    for objective in OBJECTIVES:
        loss, grads = _loss_and_grads(var, vae, prefix, fD, objective, "bf16")
        assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads.values())
        opt.step()


def test_a_onednn_isa_cap_below_bf16_makes_auto_fp32(monkeypatch) -> None:
    """repro_timing.py --fp32-cpu caps oneDNN at AVX2 to run as a CPU without native bf16."""
    cpu, bf16_cpu = torch.device("cpu"), frozenset({"avx512f", "avx512_bf16"})
    for cap, native in (("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True),
                        ("ALL", True), ("", True), ("NOT_AN_ISA", True)):  # fmt: skip
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert native_bf16(cpu, bf16_cpu) is native, cap
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert native_bf16(cpu, bf16_cpu)
