"""Model checkpoints: safetensors with the config inside, and the official VAR weights.

Our files are one safetensors file whose tensors are ``vae.*`` and ``var.*`` and whose
metadata holds the ModelConfig (``depthcore_config``) and free ``meta`` (e.g. the depth
normalisation ``space``) as JSON. ``torch.save`` files are read too, but only with
``torch.load(weights_only=True)``: a file holding pickled Python objects is refused,
never executed. Every failure names the file and what is wrong with it.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from depthcore.config import ConfigError, from_dict, to_dict
from depthcore.errors import CheckpointError
from depthcore.io import atomic_path
from depthcore.models import MODEL_CONFIGS, ModelConfig, VARConfig, VQVAEConfig, build_model
from depthcore.models.condition import CONDITION, remap_legacy_keys
from depthcore.models.official import (
    DERIVED_KEYS,
    OFFICIAL_META,
    VAE_PREFIX,
    is_official_depthart,
    split_official,
)
from depthcore.models.pixels import weights_from_checkpoint
from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE

CONFIG_KEY = "depthcore_config"
META_KEY = "depthcore_meta"
KIND_KEY = "depthcore_kind"


@dataclass
class LoadedModel:
    vae: VQVAE
    var: DepthVAR
    config: ModelConfig
    meta: dict[str, Any]


@dataclass
class LoadedVAE:
    vae: VQVAE
    config: VQVAEConfig
    meta: dict[str, Any]


# --- low level: read/write a flat tensor dict + string metadata ---------------------------


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=metadata)
        _sort_metadata(tmp)


def _sort_metadata(path: Path) -> None:
    """Rewrite a safetensors header with its ``__metadata__`` keys sorted, in place.

    safetensors writes the metadata from a Rust HashMap, in an order that changes from
    process to process, so the same weights gave files of different bytes (and DVC
    hashes) on every run. Sorted, the same model is the same file. The header keeps its
    length (trailing spaces pad it, as safetensors pads to 8 bytes), so the tensor data
    stays where it is; a header the re-encoding would lengthen is left as written.
    """
    with path.open("r+b") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
        if "__metadata__" not in header:
            return
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        encoded = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(encoded) > size:
            return
        fh.seek(8)
        fh.write(encoded.ljust(size, b" "))


def _is_safetensors(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and not head.startswith(b"PK") and head[8:9] == b"{"


def checkpoint_kind(path: str | Path) -> str:
    """The ``depthcore_kind`` of a checkpoint (``model``, ``vae``, ``regression``...).

    Reads the metadata only (no tensors) of a safetensors file. Files without the key
    (plain torch files) are ``model``, the one kind that existed before the others.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not _is_safetensors(path):
        return _read(path, "cpu")[1].get(KIND_KEY, "model")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return (fh.metadata() or {}).get(KIND_KEY, "model")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file: {exc}") from exc


def _read(
    path: str | Path, map_location: str | torch.device
) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, metadata) of a safetensors file or a weights-only torch file."""
    path = Path(path)
    map_location = str(map_location)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty (0 bytes)")
    if _is_safetensors(path):
        try:
            with safe_open(str(path), framework="pt") as fh:
                metadata = dict(fh.metadata() or {})
            return load_file(str(path), device=map_location), metadata
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file: {exc}") from exc
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refusing to load: the file contains pickled Python objects "
            f"(only tensors and plain containers are accepted): {exc}"
        ) from exc
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        SafetensorError,
        KeyError,
        IndexError,
    ) as exc:
        # (torch.load hands *.safetensors names to safetensors, hence its error type; the
        # weights-only unpickler fails on arbitrary bytes with KeyError / IndexError)
        raise CheckpointError(f"{path}: not a readable torch checkpoint: {exc}") from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    if "state_dict" in obj and CONFIG_KEY in obj:  # our own torch.save layout
        metadata = {k: v for k, v in obj.items() if k != "state_dict"}
        if not all(isinstance(v, str) for v in metadata.values()):
            raise CheckpointError(f"{path}: metadata entries must be JSON strings")
        return dict(obj["state_dict"]), metadata
    return dict(obj), {}


def _strict_load(module: nn.Module, sd: Mapping[str, Any], path: Path, what: str) -> None:
    """``load_state_dict(strict=True)`` with a complete, readable account of any mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    not_tensor = sorted(k for k, v in sd.items() if not isinstance(v, torch.Tensor))
    wrong = sorted(
        f"{k} {tuple(sd[k].shape)}/{sd[k].dtype} != {tuple(v.shape)}/{v.dtype}"
        for k, v in own.items()
        if k in sd
        and isinstance(sd[k], torch.Tensor)
        and (sd[k].shape != v.shape or sd[k].dtype != v.dtype)
    )
    problems = [
        f"{name}: {', '.join(items[:8])}{' ...' if len(items) > 8 else ''} ({len(items)})"
        for name, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("not tensors", not_tensor),
            ("shape/dtype", wrong),
        )
        if items
    ]
    if problems:
        raise CheckpointError(f"{path}: {what} does not match the model: {'; '.join(problems)}")
    module.load_state_dict(sd, strict=True, assign=any(t.is_meta for t in own.values()))


def _split(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _json(metadata: Mapping[str, str], key: str, path: Path) -> Any:
    if key not in metadata:
        raise CheckpointError(f"{path}: metadata key '{key}' is missing (not a depthcore file?)")
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata '{key}' is not valid JSON: {exc}") from exc


def _config(cls: type, data: Any, path: Path, expected: Any) -> Any:
    try:
        cfg = from_dict(cls, data, CONFIG_KEY)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: stored config is invalid: {exc}") from exc
    if expected is not None and cfg != expected:
        raise CheckpointError(
            f"{path}: config mismatch: file has {to_dict(cfg)}, expected {to_dict(expected)}"
        )
    return cfg


def _metadata(kind: str, cfg: Any, meta: Mapping[str, Any] | None) -> dict[str, str]:
    """The string metadata of our files: kind, config and free meta, as JSON."""
    return {
        KIND_KEY: kind,
        CONFIG_KEY: json.dumps(to_dict(cfg)),
        META_KEY: json.dumps(dict(meta or {})),
    }


def _read_ours(
    path: Path, map_location: str | torch.device, cls: type, expected: Any
) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """(tensors, config, meta) of a file written by :func:`save_model` or :func:`save_vae`."""
    sd, metadata = _read(path, map_location)
    return (sd, *_parse_ours(metadata, path, cls, expected))


def _parse_ours(
    metadata: Mapping[str, str], path: Path, cls: type, expected: Any
) -> tuple[Any, dict[str, Any]]:
    """(config, meta) from our files' metadata."""
    cfg = _config(cls, _json(metadata, CONFIG_KEY, path), path, expected)
    return cfg, _json(metadata, META_KEY, path) if META_KEY in metadata else {}


# --- our checkpoints ----------------------------------------------------------------------


def save_model(
    path: str | Path,
    vae: VQVAE,
    var: DepthVAR,
    model_cfg: ModelConfig,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write vae + var + config + meta to one safetensors file, atomically."""
    path = Path(path)
    if vae.config != model_cfg.vae or var.config != model_cfg.var:
        raise CheckpointError(f"{path}: the modules were not built from the given model_cfg")
    tensors = {f"vae.{k}": v for k, v in vae.state_dict().items()}
    tensors.update({f"var.{k}": v for k, v in var.state_dict().items()})
    _write(path, tensors, _metadata("model", model_cfg, meta))


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu", expected: ModelConfig | None = None
) -> LoadedModel:
    """Rebuild (vae, var) from a :func:`save_model` file; ``expected`` must equal its config.

    The released official DepthART ``model.safetensors`` loads too (recognised by its
    keys, :mod:`depthcore.models.official`; ``expected`` defaults to ``d16-depthart``).
    """
    path = Path(path)
    sd, metadata = _read(path, map_location)
    if CONFIG_KEY not in metadata and is_official_depthart(sd):
        return _load_official_depthart(path, sd, map_location, expected)
    cfg, meta = _parse_ours(metadata, path, ModelConfig, expected)
    with weights_from_checkpoint():  # every tensor comes from the file: no timm, no init
        vae, var = build_model(cfg)
    _strict_load(vae, _split(sd, "vae."), path, "the 'vae.' tensors")
    # files written before the image condition was one module name its parts differently
    _strict_load(var, remap_legacy_keys(_split(sd, "var.")), path, "the 'var.' tensors")
    others = sorted(k for k in sd if not k.startswith(("vae.", "var.")))
    if others:
        raise CheckpointError(f"{path}: unexpected tensors {others[:8]}")
    return LoadedModel(vae.to(map_location), var.to(map_location), cfg, meta)


def _load_official_depthart(
    path: Path,
    sd: Mapping[str, Any],
    map_location: str | torch.device,
    expected: ModelConfig | None,
) -> LoadedModel:
    cfg, vae_sd, var_sd = split_official(sd, path, expected)
    with weights_from_checkpoint():
        vae, var = build_model(cfg)
    own = var.state_dict()
    var_sd.update({k: own[k] for k in DERIVED_KEYS if k not in var_sd})
    _strict_load(vae, vae_sd, path, f"the official DepthART VQ-VAE ({VAE_PREFIX}*)")
    _strict_load(var, var_sd, path, "the official DepthART transformer")
    return LoadedModel(vae.to(map_location), var.to(map_location), cfg, dict(OFFICIAL_META))


def load_pretrained_var(
    path: str | Path, var: DepthVAR, expected: ModelConfig, tokenizer_sha256: str = ""
) -> dict[str, Any]:
    """Copy the transformer weights of a :func:`save_model` file (the pretrain stage's) into
    ``var``; returns the file's meta.

    Strict: the file's model config must equal ``expected`` and every tensor must match by
    key and shape, else :class:`CheckpointError` naming the file. Weights pretrained on
    another tokenizer's codes are refused too (``meta.tokenizer_sha256``, when recorded):
    their embeddings and logits index another codebook.
    """
    path = Path(path)
    loaded = load_model(path, expected=expected)
    trained_on = loaded.meta.get("tokenizer_sha256", "")
    if tokenizer_sha256 and trained_on and trained_on != tokenizer_sha256:
        raise CheckpointError(
            f"{path}: pretrained with tokenizer sha256 {trained_on[:12]}..., but this run's "
            f"tokenizer is {tokenizer_sha256[:12]}...; rerun the pretrain stage"
        )
    _strict_load(var, loaded.var.state_dict(), path, "the pretrained 'var.' tensors")
    return loaded.meta


def save_module(
    path: str | Path, kind: str, module: nn.Module, cfg: Any, meta: Mapping[str, Any] | None
) -> None:
    """Write one module built from config ``cfg`` (weights + config + meta) as ``kind``."""
    _write(Path(path), dict(module.state_dict()), _metadata(kind, cfg, meta))


def load_module(
    path: str | Path,
    cfg_cls: type,
    build: Callable[[Any], nn.Module],
    *,
    map_location: str | torch.device = "cpu",
    expected: Any = None,
    what: str = "the tensors",
) -> tuple[Any, Any, dict[str, Any]]:
    """(module, config, meta) of a :func:`save_module` file; ``build(config)`` makes the module."""
    path = Path(path)
    sd, cfg, meta = _read_ours(path, map_location, cfg_cls, expected)
    with weights_from_checkpoint():  # every tensor comes from the file: no timm, no init
        module = build(cfg)
    _strict_load(module, sd, path, what)
    return module.to(map_location), cfg, meta


def save_vae(
    path: str | Path,
    vae: VQVAE,
    vae_cfg: VQVAEConfig | None = None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write a tokenizer alone (its config defaults to ``vae.config``)."""
    cfg = vae.config if vae_cfg is None else vae_cfg
    if cfg != vae.config:
        raise CheckpointError(f"{path}: the VQVAE was not built from the given vae_cfg")
    save_module(path, "vae", vae, cfg, meta)


def load_vae(
    path: str | Path, map_location: str | torch.device = "cpu", expected: VQVAEConfig | None = None
) -> LoadedVAE:
    """Rebuild a tokenizer from a :func:`save_vae` file."""
    vae, cfg, meta = load_module(
        path, VQVAEConfig, VQVAE.from_config, map_location=map_location, expected=expected,
        what="the tokenizer tensors",
    )  # fmt: skip
    return LoadedVAE(vae, cfg, meta)


# --- the official VAR checkpoints (raw state_dicts) ----------------------------------------


def load_official_vae(
    path: str | Path, cfg: VQVAEConfig | None = None, map_location: str | torch.device = "cpu"
) -> VQVAE:
    """The official ``vae_ch160v4096z32.pth`` (or a same-layout file) as a VQVAE, strictly."""
    path = Path(path)
    sd, _ = _read(path, map_location)
    vae = VQVAE.from_config(MODEL_CONFIGS["d16"].vae if cfg is None else cfg)
    _strict_load(vae, sd, path, "the official VQ-VAE state_dict")
    return vae.to(map_location)


def load_official_var(
    path: str | Path,
    cfg: VARConfig | None = None,
    vae_cfg: VQVAEConfig | None = None,
    map_location: str | torch.device = "cpu",
) -> DepthVAR:
    """The official ``var_d16.pth`` (or a same-layout file) as a DepthVAR, strictly.

    Every official key, buffers included, must be present with its shape: nothing is
    dropped, except VAR's ``scale_mul_1H11`` into a model without q/k L2 normalisation
    (``attn_l2_norm=False``, the official DepthART's ``cos_attn: False``, which loads
    var_d16.pth the same way). Only the image condition's optional parts
    (``condition.*``) may be absent.
    """
    path = Path(path)
    sd, _ = _read(path, map_location)
    vae_cfg = MODEL_CONFIGS["d16"].vae if vae_cfg is None else vae_cfg
    cfg = MODEL_CONFIGS["d16"].var if cfg is None else cfg
    var = DepthVAR.from_config(
        cfg, vae_cfg.vocab_size, vae_cfg.z_channels, vae_cfg.v_patch_nums, vae_cfg.image_size
    )
    if not cfg.attn_l2_norm:  # DepthART (cos_attn False) drops VAR's learned q scales,
        # as the official code does loading var_d16.pth with strict=False; nothing else
        sd = {k: v for k, v in sd.items() if not k.endswith(".attn.scale_mul_1H11")}
    # the image condition's optional parts keep their fresh initialisation
    own = var.state_dict()
    extras = {k: own[k] for k in own if k.split(".")[0] == CONDITION and k not in sd}
    _strict_load(var, {**sd, **extras}, path, "the official VAR state_dict")
    return var.to(map_location)


def load_state_dict_strict(module: nn.Module, sd: Mapping[str, Any], source: str) -> None:
    """Strict load of an in-memory state_dict, reporting mismatches against ``source``."""
    _strict_load(module, sd, Path(source), "the state_dict")
