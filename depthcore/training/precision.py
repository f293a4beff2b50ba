"""Precision and kernels for training: bf16 autocast, TF32, torch.compile, checkpointing.

The weights and the AdamW moments always stay fp32 ("master weights"): ``bf16`` only
runs the matmuls, attention and convolutions of the forward pass (and so the backward)
in bfloat16 under ``torch.autocast``, which works on CPU as well as CUDA. bf16 has
fp32's exponent range, so no loss scaling is needed. On CUDA, fp32 matmuls and convs
use TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation), as the official VAR
training does; CPU matmuls are unaffected by the flag.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from torch import nn

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "auto")

#: /proc/cpuinfo flags of CPUs that run bf16 matmuls natively (AVX512-BF16, AMX).
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The x86 feature flags of this CPU (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


#: oneDNN's CPU ISA levels (``ONEDNN_MAX_CPU_ISA``), lowest first; bf16 dot products are
#: native from AVX512_CORE_BF16 on. A cap below it makes oneDNN emulate bf16.
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
               "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16",
               "AVX10_1_512_AMX", "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16",
               "AVX512_CORE_AMX_FP16", "ALL")  # fmt: skip


def onednn_allows_bf16(cap: str | None) -> bool:
    """Whether a ``ONEDNN_MAX_CPU_ISA`` cap (None: unset) leaves native bf16 kernels on.
    Capping the ISA is how a bf16 CPU runs as one without (bench/learning/repro_timing.py)."""
    if not cap:
        return True
    cap = cap.strip().upper()
    if cap not in ONEDNN_ISAS:
        return True  # oneDNN ignores a value it does not know
    return ONEDNN_ISAS.index(cap) >= ONEDNN_ISAS.index("AVX512_CORE_BF16")


def native_bf16(device: torch.device, flags: frozenset[str] | None = None) -> bool:
    """Whether ``device`` runs bf16 faster than fp32: CUDA with bf16 support, or a CPU with
    AVX512-BF16/AMX whose oneDNN is not capped below them (``ONEDNN_MAX_CPU_ISA``).
    Elsewhere bf16 autocast is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        has = bool(NATIVE_BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))
        return has and onednn_allows_bf16(os.environ.get("ONEDNN_MAX_CPU_ISA"))
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: ``auto`` is bf16 where :func:`native_bf16`, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def enable_tf32(device: torch.device) -> None:
    """TF32 for fp32 matmuls on CUDA (cuDNN convolutions use it by default); CPU untouched."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")


def autocast_for(
    precision: str, device: torch.device
) -> Callable[[], AbstractContextManager[object]]:
    """A factory of the context that runs a forward pass in ``precision`` on ``device``."""
    if resolve_precision(precision, device) == "fp32":
        return nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def prepare_transformer(
    var: nn.Module, *, compile: bool, checkpointing: bool, backend: str = "inductor"
) -> nn.Module:
    """Switch on activation checkpointing and/or compile the parallel pass, in place.

    ``nn.Module.compile`` compiles ``forward`` (the teacher-forced / DepthART pass that
    carries the gradients) without wrapping the module, so state_dict keys, the KV-cached
    rollout methods (left eager: their sequence length changes every scale) and
    checkpoints are untouched. ``backend`` other than inductor is for quick tests
    (``aot_eager`` traces the same graphs without generating kernels).
    """
    var.grad_checkpointing = checkpointing
    if compile:
        var.compile(backend=backend)
    return var
