"""``depthart export --format onnx``: a checkpoint to a folder of ONNX graphs plus a manifest.

A DepthART model becomes ``encoder.onnx`` (RGB -> image tokens, the prefix),
``start.onnx`` (scale 1 over the prefix, with the KV cache as outputs),
``step_<si>.onnx`` (one per later scale: its input and the cache in, logits and the
extended cache out), ``choose_<decoding>.onnx`` (greedy / expected token choice),
``advance_<si>.onnx`` (codes into f_hat, the next scale's input) and ``decoder.onnx``
(f_hat -> the normalised prediction). The graphs share their weights: every large
initializer is stored once in ``weights.bin`` and referenced by offset (ONNX external
data), so the per-scale graphs cost no copies of the transformer. The regression
baseline is one graph, ``regression.onnx``. ``manifest.json`` says what each graph
takes and returns and everything a consumer needs besides (:mod:`depthcore.export.manifest`).

Exported with ``torch.onnx.export(dynamo=True)`` (the torch.export-based exporter,
offline) at opset :data:`OPSET`; the batch dimension is dynamic, every other one static.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch
from torch import nn

from depthcore.errors import DepthcoreError
from depthcore.export import graphs
from depthcore.export.manifest import (
    MANIFEST,
    OPSET,
    WEIGHTS,
    describe,
    write_manifest,
)
from depthcore.io import file_sha256
from depthcore.models.generate import sampling_for
from depthcore.models.model_dir import load_depth_checkpoint

#: Initializers at least this large go to the shared weights file (small ones stay inline).
EXTERNAL_MIN_BYTES = 1024
_ALIGN = 64  # byte alignment of each tensor in weights.bin (lets runtimes map it)
#: Decodings exported (deterministic ones; sampling draws random numbers).
EXPORTED_DECODINGS = ("greedy", "expected")
_TRACE_BATCH = 2  # traced with 2 rows; the batch dimension stays dynamic

if TYPE_CHECKING:  # onnx is an optional extra (depthcore[onnx]): imported where used
    import onnx


class SharedWeights:
    """One weights file for many graphs: identical tensors are written once."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.offsets: dict[str, tuple[int, int]] = {}

    def externalize(self, model: onnx.ModelProto) -> None:
        """Move ``model``'s large initializers to the shared file (deduplicated by content)."""
        import onnx
        from onnx import external_data_helper, numpy_helper

        for tensor in model.graph.initializer:
            array = numpy_helper.to_array(tensor)
            data = array.tobytes()
            if len(data) < EXTERNAL_MIN_BYTES:
                continue
            digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode() + data).hexdigest()
            if digest not in self.offsets:
                pad = -self.fh.tell() % _ALIGN
                self.fh.write(b"\0" * pad)
                self.offsets[digest] = (self.fh.tell(), len(data))
                self.fh.write(data)
            offset, length = self.offsets[digest]
            for field in ("float_data", "int32_data", "int64_data", "double_data"):
                tensor.ClearField(field)
            tensor.raw_data = data  # set_external_data insists on raw_data, then it goes
            external_data_helper.set_external_data(tensor, WEIGHTS, offset, length)
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL


def load_checkpoint(model: str | Path) -> tuple[str, dict[str, nn.Module], Any, dict[str, Any]]:
    """(kind, modules, config, meta) of a checkpoint file or a local MLflow model folder."""
    loaded = load_depth_checkpoint(model)
    if loaded.vae is None:
        modules: dict[str, nn.Module] = {"net": loaded.net}
    else:
        modules = {"vae": loaded.vae, "var": loaded.net}
    for module in modules.values():
        module.eval().requires_grad_(False).float()
    return ("regression" if "net" in modules else "depthart"), modules, loaded.config, loaded.meta


def to_onnx(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    token_axis: bool = False,
) -> onnx.ModelProto:
    """``module`` traced by the dynamo exporter at :data:`OPSET`, batch dynamic (axis 0,
    axis 1 of the stacked caches ``k_NBHlc`` / ``v_NBHlc``); ``token_axis``: axis 1 of
    every input is dynamic too (the token choice serves every scale)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = tuple({1 if name.endswith("NBHlc") else 0: batch} for name in input_names)
    if token_axis:
        tokens = torch.export.Dim("tokens", min=1, max=1 << 20)
        dynamic = tuple({**axes, 1: tokens} for axes in dynamic)
    # the exporter prints its progress, and warns that the batch axes share one name
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*", category=UserWarning)
        program = torch.onnx.export(
            module.eval(),
            args,
            dynamo=True,
            opset_version=OPSET,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic,
            verbose=False,
        )
    if program is None:
        raise DepthcoreError(f"torch.onnx.export returned no program for {type(module).__name__}")
    return program.model_proto


def _depthart_graphs(
    vae: nn.Module, var: nn.Module, image_size: int
) -> Iterator[tuple[str, nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]]:
    """(file stem, module, example inputs, input names, output names) of every graph."""
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(_TRACE_BATCH, 3, image_size, image_size, generator=gen) * 2 - 1
    with torch.no_grad():
        prefix = graphs.Encoder(vae)(rgb)
        start = graphs.Start(var)
        start_args = (prefix, rgb) if var.reads_pixels else (prefix,)
        start_out = start(*start_args)
    yield "encoder", graphs.Encoder(vae), (rgb,), ["rgb_B3SS"], ["prefix_BLCv"]
    local = len(start_out) == 4
    yield (
        "start",
        start,
        start_args,
        ["prefix_BLCv", "rgb_B3SS"][: len(start_args)],
        ["logits_BlV", "k_NBHlc", "v_NBHlc", "local_BLC"][: len(start_out)],
    )
    k, v = start_out[1], start_out[2]
    SN, H = len(var.patch_nums), vae.v_patch_nums[-1]
    f_hat = torch.zeros(_TRACE_BATCH, vae.Cvae, H, H)
    for si in range(SN):
        pn = var.patch_nums[si]
        h = torch.randn(_TRACE_BATCH, pn * pn, vae.Cvae, generator=gen)
        advance = graphs.Advance(vae, si)
        with torch.no_grad():
            f_hat_next, next_BlCv = advance(f_hat, h)
        yield (
            f"advance_{si}",
            advance,
            (f_hat, h),
            ["f_hat_BChw", "h_BlCv"],
            ["f_hat_out_BChw", "next_BlCv"],
        )
        if si + 1 < SN:
            step = graphs.Step(var, si + 1)
            step_args = (next_BlCv, k, v, *start_out[3:])
            with torch.no_grad():
                _, k, v = step(*step_args)
            yield (
                f"step_{si + 1}",
                step,
                step_args,
                ["next_BlCv", "k_NBHlc", "v_NBHlc", "local_BLC"][: 3 + local],
                ["logits_BlV", "k_out_NBHlc", "v_out_NBHlc"],
            )
        f_hat = f_hat_next
    # traced at 4 tokens: an axis of size 1 would be specialised to 1 by torch.export
    logits = torch.randn(_TRACE_BATCH, 4, var.V, generator=gen)
    for decoding in EXPORTED_DECODINGS:
        choose = graphs.Choose(vae, sampling_for(decoding))
        yield f"choose_{decoding}", choose, (logits,), ["logits_BlV"], ["idx_Bl", "h_BlCv"]
    yield "decoder", graphs.Decoder(vae), (f_hat,), ["f_hat_BChw"], ["pred_B1SS"]


def export_onnx(model: str | Path, out_dir: str | Path, force: bool = False) -> Path:
    """Export the checkpoint ``model`` to ``out_dir`` (ONNX graphs, weights.bin, manifest).

    The folder is built under a temporary name beside ``out_dir`` and renamed when
    complete, so an interrupted export never leaves a folder that looks usable.
    ``force``: replace an existing ``out_dir`` (an earlier export or an empty folder only).
    """
    try:
        import onnx
    except ImportError as exc:
        raise DepthcoreError(
            "export needs onnx and onnxscript: pip install 'depthcore[onnx]'"
        ) from exc
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise DepthcoreError(f"{out_dir}: already exists (pass --force to replace it)")
    if out_dir.exists() and not (out_dir / MANIFEST).is_file() and any(out_dir.iterdir()):
        raise DepthcoreError(f"{out_dir}: not an export folder (no {MANIFEST}); not replacing it")
    kind, modules, config, meta = load_checkpoint(model)
    image_size = int(meta.get("image_size", config.image_size))
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        files: dict[str, dict[str, Any]] = {}
        with open(tmp / WEIGHTS, "wb") as fh:
            weights = SharedWeights(fh)
            if kind == "regression":
                rgb = torch.rand(_TRACE_BATCH, 3, image_size, image_size) * 2 - 1
                items = [
                    (
                        "regression",
                        graphs.Regression(modules["net"]),
                        (rgb,),
                        ["rgb_B3SS"],
                        ["pred_BSS"],
                    )
                ]
            else:
                items = _depthart_graphs(modules["vae"], modules["var"], image_size)
            for stem, module, args, inputs, outputs in items:
                proto = to_onnx(module, args, inputs, outputs, stem.startswith("choose_"))
                weights.externalize(proto)
                onnx.save(proto, tmp / f"{stem}.onnx")
                files[stem] = {"file": f"{stem}.onnx", "inputs": inputs, "outputs": outputs}
        for entry in files.values():
            onnx.checker.check_model(str(tmp / entry["file"]))
        manifest = describe(modules, config, meta, image_size, files)
        manifest["source"] = {"checkpoint": Path(model).name, "sha256": _sha256(Path(model))}
        manifest["weights_sha256"] = file_sha256(tmp / WEIGHTS)
        write_manifest(tmp / MANIFEST, manifest)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _sha256(path: Path) -> str | None:
    """The checkpoint file's hash (None for a model folder: its files are hashed by MLflow)."""
    return file_sha256(path) if path.is_file() else None
