"""The study's route ablations of ``tiny`` (issue 24 item 3): each removes one image route."""

from __future__ import annotations

import pytest
import torch

from depthcore.models import MODEL_CONFIGS, create_model
from tests.helpers.models import tiny_pixel_batch


@pytest.mark.parametrize(
    ("name", "local", "pixels", "blank"),
    [
        ("tiny-nopixel", True, False, False),
        ("tiny-nolocal", False, True, False),
        ("tiny-frameonly", True, True, True),
    ],
)
def test_each_variant_differs_from_tiny_in_its_route_only(name, local, pixels, blank) -> None:
    tiny, variant = MODEL_CONFIGS["tiny"], MODEL_CONFIGS[name]
    assert variant.vae == tiny.vae  # one tokenizer and feature cache for the whole study
    _, var = create_model(name)
    assert (var.condition.local is not None) is local
    assert var.condition.reads_pixels is pixels
    assert var.condition.blank_prefix is blank


def test_a_blank_prefix_model_ignores_the_tokens_but_reads_the_frame() -> None:
    vae, var, prefix, fD, rgb = tiny_pixel_batch(B=2, seed=3, var={"blank_prefix": True})
    x_BlCv = vae.idxBl_to_var_input(vae.f_to_idxBl(fD))
    var.eval()
    with torch.no_grad():
        logits = var(prefix, x_BlCv, rgb)
        other_tokens = var(torch.randn_like(prefix), x_BlCv, rgb)
        other_frame = var(prefix, x_BlCv, rgb.roll(1, dims=0))
    torch.testing.assert_close(logits, other_tokens)
    assert (logits - other_frame).abs().max() > 1e-3


def test_the_default_model_reads_the_tokens() -> None:
    """The check above can fail: without blank_prefix the same change moves the logits."""
    vae, var, prefix, fD, rgb = tiny_pixel_batch(B=2, seed=3)
    x_BlCv = vae.idxBl_to_var_input(vae.f_to_idxBl(fD))
    var.eval()
    with torch.no_grad():
        diff = var(prefix, x_BlCv, rgb) - var(torch.randn_like(prefix), x_BlCv, rgb)
    assert diff.abs().max() > 1e-3
