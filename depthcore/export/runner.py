"""Run an exported folder with onnxruntime: the next-scale loop over the ONNX graphs.

The loop is :func:`depthcore.models.scale_loop.next_scale_loop`, the one the torch
rollout runs; here its step, choice and update are onnxruntime sessions and the KV
cache is the pair of arrays the graphs pass along. Needs only numpy, onnxruntime and
the folder (its ``manifest.json`` says the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthcore.errors import DepthcoreError
from depthcore.export.manifest import read_manifest
from depthcore.models.scale_loop import next_scale_loop


@dataclass
class OnnxGeneration:
    """Prediction (B, 1, S, S) in the normalised space, per-scale maps (K, B, 1, S, S) when
    asked, and the tokens chosen per scale (argmax; K arrays (B, pn^2))."""

    pred_B1SS: np.ndarray
    scales_K_B1SS: np.ndarray | None
    idx_K: list[np.ndarray]


class OnnxModel:
    """The sessions of one export folder and the loop that runs them."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        """Open every graph of ``folder``; ``threads``: onnxruntime intra-op threads."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise DepthcoreError(
                "the onnxruntime backend needs onnxruntime: pip install 'depthcore[onnx]'"
            ) from exc
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.sessions = {
            stem: ort.InferenceSession(
                str(self.folder / entry["file"]), options, providers=["CPUExecutionProvider"]
            )
            for stem, entry in self.manifest["graphs"].items()
        }

    @property
    def kind(self) -> str:
        """``depthart`` (the token loop) or ``regression`` (one graph)."""
        return self.manifest["kind"]

    def run(self, stem: str, *arrays: np.ndarray) -> list[np.ndarray]:
        """Run graph ``stem`` on its inputs in manifest order; its outputs in order."""
        names = self.manifest["graphs"][stem]["inputs"]
        return self.sessions[stem].run(None, dict(zip(names, arrays, strict=True)))

    def predict(
        self, rgb_B3SS: np.ndarray, decoding: str = "expected", keep_scales: bool = False
    ) -> OnnxGeneration:
        """The model on square inputs in [-1, 1] (float32 NCHW at the model resolution)."""
        rgb_B3SS = np.ascontiguousarray(rgb_B3SS, dtype=np.float32)
        if self.kind == "regression":
            pred_B1SS = self.run("regression", rgb_B3SS)[0][:, None]
            return OnnxGeneration(pred_B1SS, pred_B1SS[None] if keep_scales else None, [])
        decodings = self.manifest["decodings"]
        if decoding not in decodings:
            raise DepthcoreError(
                f"{self.folder}: decoding {decoding!r} not exported; "
                f"the onnxruntime backend has {', '.join(decodings)}"
            )
        loop_spec = self.manifest["loop"]
        (prefix_BLCv,) = self.run("encoder", rgb_B3SS)
        start_inputs = (prefix_BLCv, rgb_B3SS) if loop_spec["reads_pixels"] else (prefix_BLCv,)
        first = self.run("start", *start_inputs)
        state = first[1:]  # k, v and, for a model with a local image path, local_BLC
        choose_graph = decodings[decoding]["graph"]

        def step(si: int, next_BlCv: np.ndarray | None) -> np.ndarray:
            nonlocal state
            if si == 0:
                return first[0]
            logits_BlV, k, v = self.run(loop_spec["steps"][si - 1], next_BlCv, *state)
            state = [k, v, *state[2:]]
            return logits_BlV

        def choose(si: int, logits_BlV: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            idx_Bl, h_BlCv = self.run(choose_graph, logits_BlV)
            return idx_Bl, h_BlCv

        def advance(
            si: int, f_hat: np.ndarray, h_BlCv: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray]:
            f_hat, next_BlCv = self.run(loop_spec["advance"][si], f_hat, h_BlCv)
            return f_hat, next_BlCv

        f_hat = np.zeros((len(rgb_B3SS), *loop_spec["f_hat"]), dtype=np.float32)
        loop = next_scale_loop(
            len(loop_spec["patch_nums"]), f_hat, step, choose, advance,
            np.copy if keep_scales else None,
        )  # fmt: skip
        (pred_B1SS,) = self.run("decoder", loop.f_hat)
        scales = None
        if loop.fhats_K is not None:
            scales = np.stack([self.run("decoder", f)[0] for f in loop.fhats_K])
        return OnnxGeneration(pred_B1SS, scales, loop.idx_K)
