"""The next-scale loop, independent of what runs each step (torch modules or ONNX graphs).

VAR-style generation is the same loop whatever executes it: ask the transformer for
scale ``si``'s logits given the previous scale's input, choose the codes, add them to
the running f_hat and build the next scale's input. :func:`depthcore.models.generate.
rollout` runs it with torch modules and a KV cache object; the ONNX runner
(:mod:`depthcore.export.runner`) with onnxruntime sessions whose cache is an explicit
tensor. Sharing the loop keeps the two backends from drifting apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")  # a tensor of the backend: torch.Tensor or numpy.ndarray


@dataclass
class ScaleLoop(Generic[T]):
    """What one loop chose and built, per scale: tokens, the code embeddings ``choose``
    returned, the input each scale built for the next (the last one: f_hat's flattening
    is not needed, it is the final map), the final f_hat and, when asked, each scale's."""

    idx_K: list[T]
    h_K: list[T]
    next_K: list[T]
    f_hat: T
    fhats_K: list[T] | None


def next_scale_loop(
    n_scales: int,
    f_hat: T,
    step: Callable[[int, T | None], T],
    choose: Callable[[int, T], tuple[T, T]],
    advance: Callable[[int, T, T], tuple[T, T]],
    snapshot: Callable[[T], T] | None = None,
) -> ScaleLoop[T]:
    """Run ``n_scales`` scales from an empty ``f_hat``.

    ``step(si, next_input)`` gives scale ``si``'s logits (``next_input`` is None at
    scale 0, where the step starts from the image prefix); ``choose(si, logits)`` gives
    ``(idx, h)``, the tokens and the code embeddings fed forward; ``advance(si, f_hat,
    h)`` gives ``(f_hat, next_input)``. ``snapshot``: when given, the cumulative f_hat
    after every scale is recorded through it (a copy, as ``advance`` may update in place).
    """
    idx_K: list[T] = []
    h_K: list[T] = []
    next_K: list[T] = []
    fhats_K: list[T] | None = [] if snapshot is not None else None
    next_input: T | None = None
    for si in range(n_scales):
        logits = step(si, next_input)
        idx, h = choose(si, logits)
        f_hat, next_input = advance(si, f_hat, h)
        idx_K.append(idx)
        h_K.append(h)
        next_K.append(next_input)
        if fhats_K is not None and snapshot is not None:
            fhats_K.append(snapshot(f_hat))
    return ScaleLoop(idx_K, h_K, next_K, f_hat, fhats_K)
