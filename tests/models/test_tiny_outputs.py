"""The default ``tiny`` model computes exactly what it computed before the image condition
became one object (depthcore.models.condition).

The fixture was written by this file's ``__main__`` from the code before that refactor
(commit 8bbcdad): a seeded build of the default ``tiny`` (prefix_local + ResNet-10-T pixel
path), every parameter then perturbed by a seeded generator (VAR starts its blocks ~off,
which would hide most of the computation), fixed inputs, and the outputs of every pass
the pipeline runs: the seeded initialisation itself, teacher-forced and prefix-free
logits, the DepthART and teacher-forcing losses and their gradients, greedy / expected /
sampled generation (cached, uncached, repeated) and a bf16-autocast pass. Each output is
stored as a sha256 of its bytes (for the exact check) and a small float summary (for
other machines).

Bit-identical is asserted where the fixture's torch version and CPU capability match the
running ones (other kernels may round differently); elsewhere the summaries of the fp32
passes that take no token decisions are compared at rtol 1e-4. Regenerate only
deliberately: ``python -m tests.models.test_tiny_outputs``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from depthcore.models import create_model, image_prefix
from depthcore.models.generate import EXPECTED, GREEDY, SamplingConfig, generate
from depthcore.training.depthart import depthart_loss
from depthcore.training.teacher_forcing import teacher_forcing_loss

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tiny_outputs.json"


def platform() -> str:
    """What the exact hashes depend on besides the code."""
    return f"torch {torch.__version__.split('+')[0]} cpu {torch.backends.cpu.get_cpu_capability()}"


def _multiset_digest(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A name- and order-free fingerprint of many tensors: their sorted sha256s, as bytes."""
    digests = sorted(
        hashlib.sha256(t.detach().contiguous().numpy().tobytes()).digest() for t in tensors
    )
    return torch.frombuffer(bytearray(b"".join(digests)), dtype=torch.uint8)


def tiny_outputs() -> dict[str, torch.Tensor]:
    """Every output of the default tiny model on fixed inputs (CPU, one thread: the
    reductions' order, and so their rounding, depends on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _tiny_outputs()
    finally:
        torch.set_num_threads(threads)


def _tiny_outputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    vae, var = create_model("tiny")
    outs = {"init_state": _multiset_digest(list(var.state_dict().values()))}
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in var.parameters():  # open every path (gains, the zeroed pixel projection)
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    vae.eval()
    var.eval()
    B, size = 2, vae.v_patch_nums[-1] * vae.downsample
    rgb_B3HW = torch.rand(B, 3, size, size, generator=gen) * 2 - 1
    depth_B3HW = torch.rand(B, 1, size, size, generator=gen).expand(B, 3, size, size) * 2 - 1
    prefix_BLC = image_prefix(vae, rgb_B3HW)
    with torch.no_grad():
        fD_BChw = vae.encode_features(depth_B3HW)
        x_BlCv = vae.idxBl_to_var_input(vae.f_to_idxBl(fD_BChw))
        outs["tf_logits"] = var(prefix_BLC, x_BlCv, rgb_B3HW)
        outs["no_prefix_logits"] = var(None, x_BlCv)
        outs["partial_logits"] = var(prefix_BLC, x_BlCv[:, :20], rgb_B3HW)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs["bf16_logits"] = var(prefix_BLC, x_BlCv, rgb_B3HW).float()
    for name, loss_fn in (("depthart", depthart_loss), ("tf", teacher_forcing_loss)):
        var.zero_grad(set_to_none=True)
        out = loss_fn(vae, var, prefix_BLC, fD_BChw, rgb_B3HW=rgb_B3HW)
        out.loss.backward()
        outs[f"{name}_loss"] = out.loss.detach().reshape(1)
        outs[f"{name}_ce"] = out.ce_BL.detach()
        outs[f"{name}_grads"] = _multiset_digest([p.grad for p in var.parameters()])
    var.zero_grad(set_to_none=True)
    sample = SamplingConfig(num_samples=3, seed=5)
    for name, sampling, kwargs in (
        ("greedy", GREEDY, {}),
        ("greedy_nocache", GREEDY, {"use_cache": False}),
        ("expected", EXPECTED, {"return_scales": True}),
        ("sample_rep2", sample, {"repeats": 2}),
        ("sample_rep2_nocache", sample, {"repeats": 2, "use_cache": False}),
    ):
        g = generate(vae, var, prefix_BLC, sampling=sampling, rgb_B3HW=rgb_B3HW, **kwargs)
        outs[f"gen_{name}"] = g.pred_B1HW
        if g.scales_K_B1HW is not None:
            outs[f"gen_{name}_scales"] = g.scales_K_B1HW
    return outs


def _describe(t: torch.Tensor) -> dict[str, object]:
    flat = t.detach().reshape(-1)
    return {
        "sha256": hashlib.sha256(flat.contiguous().numpy().tobytes()).hexdigest(),
        "shape": list(t.shape),
        "sum": float(flat.double().sum()),
        "abs_sum": float(flat.double().abs().sum()),
        "head": [float(v) for v in flat[:8].double()],
    }


def test_tiny_outputs_equal_the_pre_refactor_ones() -> None:
    fixture = json.loads(FIXTURE.read_text())
    outs = {k: _describe(v) for k, v in tiny_outputs().items()}
    assert sorted(outs) == sorted(fixture["outputs"])
    if fixture["platform"] == platform():
        mismatched = [k for k, v in outs.items() if v["sha256"] != fixture["outputs"][k]["sha256"]]
        assert not mismatched, f"not bit-identical to the pre-refactor outputs: {mismatched}"
        return
    for k, v in outs.items():  # another kernel set: the digests' bytes differ by rounding
        ref = fixture["outputs"][k]
        assert v["shape"] == ref["shape"], k
        if k in ("init_state", "bf16_logits") or k.endswith("_grads"):
            continue  # digests of bytes; bf16 rounding is the kernels' own
        if k.startswith(("gen_", "depthart_")):
            continue  # argmax/sampling decisions may flip on other kernels' rounding
        for field in ("sum", "abs_sum", "head"):
            assert v[field] == pytest.approx(ref[field], rel=1e-4, abs=1e-5), (k, field)


if __name__ == "__main__":  # write the fixture (and, with a path argument, the raw tensors)
    outputs = tiny_outputs()
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"  {json.dumps(k)}: {json.dumps(_describe(v))}" for k, v in outputs.items()]
    body = ",\n".join(lines)
    FIXTURE.write_text(f'{{"platform": {json.dumps(platform())}, "outputs": {{\n{body}\n}}}}\n')
    if len(sys.argv) > 1:
        torch.save(outputs, sys.argv[1])
