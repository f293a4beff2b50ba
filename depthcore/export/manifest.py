"""``manifest.json`` of an exported model: everything a consumer needs besides the graphs.

A consumer (our onnxruntime runner or anyone's) reads: which graphs there are and the
names of their inputs/outputs; the input convention (uint8 RGB stretched to S x S by
area resampling, ``x / 127.5 - 1``, NCHW float32); the next-scale loop's shapes
(patch_nums, L, first_l, Cvae, the cache layout); the decodings exported and their
top-k/top-p; and the prediction's space with the formula that turns the normalised
map into depth (:func:`depthcore.spaces.normalised_to_depth`). The model config and
the checkpoint's metadata are copied in verbatim.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthcore.errors import CheckpointError
from depthcore.io import write_text_atomic
from depthcore.models.generate import sampling_for
from depthcore.spaces import DEFAULT_NEAR_FAR_RATIO, INPUT_FIT, SPACES

MANIFEST = "manifest.json"
WEIGHTS = "weights.bin"
FORMAT = "depthart-onnx"
FORMAT_VERSION = 1
#: The ONNX opset of every exported graph (onnxruntime >= 1.14 runs it).
OPSET = 18

_TO_DEPTH = {
    "depth": "depth = p",
    "disparity": "depth = 1 / max(p, 1e-6)",
    "scale_depth": "depth = (p + 1) / 2 (units of the 98th-percentile depth)",
    "sqrt_disparity": "s_far = near_far_ratio ** -0.5; s = max(s_far + (p + 1) / 2 * (1 - s_far), "
    "s_far / 10); depth = 1 / s**2 (near end at 1, far end at near_far_ratio)",
}


def _common(config: Any, meta: dict[str, Any], image_size: int) -> dict[str, Any]:
    space = meta["space"]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "opset": OPSET,
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__.split('+')[0]}",
        "weights": WEIGHTS,
        "space": space,
        "image_size": image_size,
        "input": {
            "layout": "rgb_B3SS float32, NCHW, batch dynamic",
            "fit": meta.get("input_fit", INPUT_FIT),
            "resize": "area resampling to image_size x image_size",
            "normalise": "x / 127.5 - 1 (uint8 RGB to [-1, 1])",
        },
        "output": {
            "meaning": f"the prediction p in the normalised {space} space (affine-invariant)",
            "to_depth": _TO_DEPTH[space],
            "near_far_ratio": DEFAULT_NEAR_FAR_RATIO,
        },
        "config": dataclasses.asdict(config),
        "checkpoint_meta": meta,
    }


def describe(
    modules: dict[str, nn.Module],
    config: Any,
    meta: dict[str, Any],
    image_size: int,
    files: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The manifest: the regression baseline (``modules['net']``, one graph) or a
    DepthART model (``vae``, ``var``: its graphs and the loop that runs them)."""
    common = {**_common(config, meta, image_size), "graphs": files}
    if "net" in modules:
        return {**common, "kind": "regression"}
    vae, var = modules["vae"], modules["var"]
    decodings = {}
    for name in ("greedy", "expected"):
        sampling = sampling_for(name)
        decodings[name] = {
            "graph": f"choose_{name}",
            "top_k": None if sampling.greedy else sampling.top_k,
            "top_p": None if sampling.greedy else sampling.top_p,
        }
    SN = len(var.patch_nums)
    return {
        **common,
        "kind": "depthart",
        "loop": {
            "patch_nums": list(var.patch_nums),
            "L": var.L,
            "first_l": var.first_l,
            "Cvae": vae.Cvae,
            "vocab_size": var.V,
            "f_hat": [vae.Cvae, vae.v_patch_nums[-1], vae.v_patch_nums[-1]],
            "cache": "k/v (N blocks, B, heads, tokens so far, head dim): the L prefix "
            "tokens, then each scale's",
            "reads_pixels": bool(var.reads_pixels),
            "local_path": "local_BLC" in files["start"]["outputs"],
            "order": "prefix = encoder(rgb); logits, k, v[, local] = start(prefix[, rgb]); "
            "f_hat = 0; for si in 0..K-1: idx, h = choose(logits); "
            "f_hat, next = advance_si(f_hat, h); if si < K-1: "
            "logits, k, v = step_{si+1}(next, k, v[, local]); pred = decoder(f_hat)",
            "steps": [f"step_{si}" for si in range(1, SN)],
            "advance": [f"advance_{si}" for si in range(SN)],
        },
        "decodings": decodings,
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, checked (one error line naming file and key)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{folder}: not an ONNX export folder (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}, expected {FORMAT!r} {FORMAT_VERSION}"
        )
    for key, kind in (("kind", str), ("space", str), ("image_size", int), ("graphs", dict)):
        if not isinstance(manifest.get(key), kind):
            raise CheckpointError(f"{path}: key {key!r} missing or not a {kind.__name__}")
    if manifest["space"] not in SPACES:
        raise CheckpointError(f"{path}: key 'space': unknown space {manifest['space']!r}")
    if manifest["kind"] not in ("depthart", "regression"):
        raise CheckpointError(f"{path}: key 'kind': {manifest['kind']!r} is not a known kind")
    if manifest["kind"] == "depthart" and not isinstance(manifest.get("loop"), dict):
        raise CheckpointError(f"{path}: key 'loop' missing or not an object")
    for stem, entry in manifest["graphs"].items():
        graph = Path(folder) / str(entry.get("file", ""))
        if not graph.is_file():
            raise CheckpointError(f"{path}: graph {stem!r}: file {graph} missing")
    return manifest
