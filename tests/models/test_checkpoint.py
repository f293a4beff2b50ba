"""Checkpoints: safetensors round trip, weights-only torch files, and what is refused."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from depthcore.errors import CheckpointError
from depthcore.models import MODEL_CONFIGS, create_model
from depthcore.models.checkpoint import load_model, load_vae, save_model, save_vae


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    vae, var = create_model("tiny")
    return vae, var, MODEL_CONFIGS["tiny"]


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sb = b.state_dict()
    sa = a.state_dict()
    assert sa.keys() == sb.keys()
    for k, v in sa.items():
        assert torch.equal(v, sb[k]), k


def test_safetensors_round_trip(tiny, tmp_path) -> None:
    vae, var, cfg = tiny
    path = tmp_path / "model.safetensors"
    save_model(path, vae, var, cfg, {"space": "sqrt_disparity", "step": 3})
    loaded = load_model(path)
    assert loaded.config == cfg and loaded.meta == {"space": "sqrt_disparity", "step": 3}
    _assert_same(vae, loaded.vae)
    _assert_same(var, loaded.var)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        keys = list(fh.keys())
    assert json.loads(meta["depthcore_config"])["var"]["depth"] == cfg.var.depth
    assert all(k.startswith(("vae.", "var.")) for k in keys)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left nothing behind


def test_the_same_weights_are_the_same_file(tiny, tmp_path) -> None:
    """safetensors orders the metadata by a per-map random hash; sorted, a retrained model
    with equal weights has equal bytes (and DVC hash). The header keeps its length."""
    vae, var, cfg = tiny
    files = [tmp_path / f"model_{i}.safetensors" for i in range(6)]
    for path in files:
        save_model(path, vae, var, cfg, {"space": "sqrt_disparity", "step": 3, "b": 1, "a": 2})
    first = files[0].read_bytes()
    assert all(path.read_bytes() == first for path in files[1:])
    size = int.from_bytes(first[:8], "little")
    header = json.loads(first[8 : 8 + size])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    plain = tmp_path / "plain.safetensors"
    state = {f"vae.{k}": v for k, v in vae.state_dict().items()}
    state |= {f"var.{k}": v for k, v in var.state_dict().items()}
    save_file(state, str(plain), metadata=header["__metadata__"])
    assert plain.stat().st_size == len(first)  # same header length, data where it was
    _assert_same(var, load_model(files[-1]).var)


def test_vae_round_trip(tiny, tmp_path) -> None:
    vae, _, cfg = tiny
    save_vae(tmp_path / "vae.safetensors", vae, meta={"space": "scale_depth"})
    loaded = load_vae(tmp_path / "vae.safetensors", expected=cfg.vae)
    assert loaded.config == cfg.vae and loaded.meta == {"space": "scale_depth"}
    _assert_same(vae, loaded.vae)


def test_weights_only_torch_file_in_our_layout(tiny, tmp_path) -> None:
    vae, var, cfg = tiny
    sd = {f"vae.{k}": v for k, v in vae.state_dict().items()}
    sd.update({f"var.{k}": v for k, v in var.state_dict().items()})
    blob = {"depthcore_config": json.dumps(dataclasses.asdict(cfg)), "state_dict": sd}
    torch.save(blob, tmp_path / "model.pth")
    loaded = load_model(tmp_path / "model.pth")
    _assert_same(var, loaded.var)


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_object_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"weights": torch.zeros(2), "obj": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth.*pickled Python objects"):
        load_model(path)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(_Payload(), protocol=2))
    with pytest.raises(CheckpointError, match=r"legacy\.pt"):
        load_model(legacy)


def test_config_mismatch_is_refused(tiny, tmp_path) -> None:
    vae, var, cfg = tiny
    path = tmp_path / "model.safetensors"
    save_model(path, vae, var, cfg, {})
    other = dataclasses.replace(cfg, var=dataclasses.replace(cfg.var, depth=3))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: config mismatch"):
        load_model(path, expected=other)
    # a file whose tensors do not fit its own stored config
    _, var3 = create_model("tiny", var={"depth": 3})
    with pytest.raises(CheckpointError, match="not built from the given model_cfg"):
        save_model(tmp_path / "x.safetensors", vae, var3, cfg)


def test_tensors_not_matching_stored_config_are_refused(tiny, tmp_path) -> None:
    vae, var, cfg = tiny
    _, var3 = create_model("tiny", var={"depth": 3})
    path = tmp_path / "lying.safetensors"
    save_model(path, vae, var, cfg)
    save_model(
        tmp_path / "d3.safetensors",
        vae,
        var3,
        dataclasses.replace(cfg, var=dataclasses.replace(cfg.var, depth=3)),
    )
    # splice: the depth-3 tensors under the depth-4 config
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    save_file(load_file(str(tmp_path / "d3.safetensors")), str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=r"lying\.safetensors.*missing: blocks\.3"):
        load_model(path)


def test_missing_and_garbage_files(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: checkpoint file not found"):
        load_model(tmp_path / "nope.safetensors")
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match=r"garbage\.safetensors"):
        load_model(bad)
