"""Our state_dicts have exactly the official checkpoints' keys, shapes and dtypes."""

from __future__ import annotations

import pytest
import torch

from depthcore.errors import CheckpointError
from depthcore.models import MODEL_CONFIGS, create_model
from depthcore.models.checkpoint import load_official_vae, load_official_var, load_state_dict_strict
from tests.helpers.models import VAE_TSV, VAR_TSV, described, read_keys_tsv

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


@pytest.fixture(scope="module")
def d16_meta():
    with torch.device("meta"):
        return create_model("d16")


def test_reference_tsvs_are_the_documented_size() -> None:
    assert len(read_keys_tsv(VAE_TSV)) == 324
    assert len(read_keys_tsv(VAR_TSV)) == 220


def test_vqvae_state_dict_equals_official(d16_meta) -> None:
    vae, _ = d16_meta
    assert described(vae.state_dict()) == read_keys_tsv(VAE_TSV)
    assert sum(p.numel() for p in vae.parameters()) == pytest.approx(109e6, rel=0.01)


def test_var_d16_state_dict_equals_official(d16_meta) -> None:
    _, var = d16_meta
    assert described(var.state_dict()) == read_keys_tsv(VAR_TSV)
    assert sum(p.numel() for p in var.parameters()) == pytest.approx(310.3e6, rel=0.01)


def _meta_state_dict(tsv) -> dict[str, torch.Tensor]:
    return {
        k: torch.empty(shape, dtype=_DTYPES[dtype], device="meta")
        for k, (shape, dtype) in read_keys_tsv(tsv).items()
    }


@pytest.mark.parametrize("which", ["vae", "var"])
def test_official_layout_loads_strictly_and_nothing_is_dropped(d16_meta, which) -> None:
    module = d16_meta[0] if which == "vae" else d16_meta[1]
    sd = _meta_state_dict(VAE_TSV if which == "vae" else VAR_TSV)
    load_state_dict_strict(module, sd, f"official-{which}")
    # an extra key (e.g. a parameter we do not have) or a missing one is refused, not dropped
    extra = dict(sd, **{"blocks.99.attn.q_bias": torch.empty(3, device="meta")})
    with pytest.raises(CheckpointError, match="unexpected: blocks.99.attn.q_bias"):
        load_state_dict_strict(module, extra, "official-extra")
    missing = dict(sd)
    dropped = next(iter(missing))
    del missing[dropped]
    with pytest.raises(CheckpointError, match=f"missing: {dropped}"):
        load_state_dict_strict(module, missing, "official-missing")


def test_official_raw_state_dict_files_load_into_fresh_models(tmp_path) -> None:
    """A raw ``torch.save(state_dict)`` (the official file format) round-trips exactly."""
    cfg = MODEL_CONFIGS["tiny"]
    vae, var = create_model("tiny")
    torch.save(vae.state_dict(), tmp_path / "vae.pth")
    torch.save(var.state_dict(), tmp_path / "var.pth")
    vae2 = load_official_vae(tmp_path / "vae.pth", cfg.vae)
    var2 = load_official_var(tmp_path / "var.pth", cfg.var, cfg.vae)
    for a, b in ((vae, vae2), (var, var2)):
        sd2 = b.state_dict()
        for k, v in a.state_dict().items():
            assert torch.equal(v, sd2[k]), k


def test_shape_mismatch_names_the_file_and_key(tmp_path) -> None:
    cfg = MODEL_CONFIGS["tiny"]
    _, var = create_model("tiny")
    sd = var.state_dict()
    sd["head.bias"] = torch.zeros(7)
    torch.save(sd, tmp_path / "bad_var.pth")
    with pytest.raises(CheckpointError, match=r"bad_var\.pth.*head\.bias \(7,\)"):
        load_official_var(tmp_path / "bad_var.pth", cfg.var, cfg.vae)
