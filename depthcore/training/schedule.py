"""Learning-rate schedules as one pure function of the step.

The trainer sets every parameter group's lr from :func:`lr_at` before each
step instead of keeping a stateful ``torch.optim.lr_scheduler``: the only
state is the step number, so resuming from a checkpoint reproduces the
uninterrupted run exactly and the schedule is testable by hand.
"""

from __future__ import annotations

import math
from typing import Literal

ScheduleKind = Literal["constant", "step", "cosine"]
SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine")


def lr_at(
    step: int,
    *,
    base_lr: float,
    kind: ScheduleKind = "constant",
    total_steps: int = 1,
    warmup_steps: int = 0,
    step_size: int = 5000,
    gamma: float = 0.8,
    min_lr: float = 0.0,
) -> float:
    """The learning rate for optimiser step ``step`` (0-based).

    Linear warm-up from ``base_lr / warmup_steps`` to ``base_lr`` over the first
    ``warmup_steps`` steps, then:

    - ``constant``: ``base_lr``;
    - ``step``: ``base_lr * gamma ** (step // step_size)`` (the official DepthART
      recipe is ``StepLR(step_size=5000, gamma=0.8)``, counted from step 0 like
      torch's StepLR, so warm-up does not shift the decay points);
    - ``cosine``: half a cosine from ``base_lr`` at the end of warm-up down to
      ``min_lr`` at ``total_steps``, then held at ``min_lr``.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if base_lr < 0 or min_lr < 0:
        raise ValueError(f"learning rates must be >= 0, got base_lr={base_lr}, min_lr={min_lr}")
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if kind == "constant":
        return base_lr
    if kind == "step":
        if step_size <= 0:
            raise ValueError(f"step_size must be > 0 for the step schedule, got {step_size}")
        return base_lr * gamma ** (step // step_size)
    if kind == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r} (choose from {', '.join(SCHEDULES)})")
