"""The LR schedule, checked against hand-computed values and torch's own StepLR."""

from __future__ import annotations

import math

import pytest
import torch

from depthcore.training.schedule import lr_at


def test_constant_with_warmup() -> None:
    lrs = [lr_at(s, base_lr=1.0, kind="constant", warmup_steps=4) for s in range(6)]
    assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_step_matches_official_steplr() -> None:
    """StepLR(step_size=5000, gamma=0.8) as in the DepthART recipe, stepped once per step."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5000, gamma=0.8)
    for step in range(16000):
        if step % 997 == 0 or step in (4999, 5000, 10000, 15000):
            expected = opt.param_groups[0]["lr"]
            got = lr_at(step, base_lr=1e-4, kind="step", step_size=5000, gamma=0.8)
            assert got == pytest.approx(expected, rel=1e-12), step
        opt.step()
        sched.step()
    assert lr_at(15000, base_lr=1e-4, kind="step") == pytest.approx(1e-4 * 0.8**3)


def test_cosine_endpoints_and_midpoint() -> None:
    kw = dict(base_lr=1.0, kind="cosine", total_steps=110, warmup_steps=10, min_lr=0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert lr_at(110, **kw) == pytest.approx(0.1)
    assert lr_at(500, **kw) == pytest.approx(0.1)
    values = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        lr_at(0, base_lr=1.0, kind="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step must be >= 0"):
        lr_at(-1, base_lr=1.0)
    with pytest.raises(ValueError, match="step_size"):
        lr_at(3, base_lr=1.0, kind="step", step_size=0)
