"""``depthart predict --backend onnxruntime``: the predictor over an exported ONNX folder.

Everything around the model (fitting images to the square input, batching, cropping
and resampling back, the depth convention) is :class:`DepthPredictor`'s; only the
model call differs: :class:`depthcore.export.runner.OnnxModel` runs the graphs. The
exported decodings are greedy and expected (deterministic), so ``--samples`` and
``--decoding sample`` are refused; the graphs are fp32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthcore.errors import CheckpointError, DepthcoreError
from depthcore.export.runner import OnnxModel
from depthcore.models.generate import EXPECTED, SamplingConfig, sampling_for
from depthcore.predict.images import Fit
from depthcore.predict.predictor import DepthPredictor
from depthcore.spaces import DEFAULT_NEAR_FAR_RATIO

BACKENDS = ("torch", "onnxruntime")


class OnnxPredictor(DepthPredictor):
    """A :class:`DepthPredictor` whose model is an exported folder run by onnxruntime."""

    def __init__(
        self,
        folder: str | Path,
        *,
        fit: Fit | None = None,
        sampling: SamplingConfig | None = None,
        seed: int | None = None,
        near_far_ratio: float = DEFAULT_NEAR_FAR_RATIO,
        threads: int | None = None,
    ) -> None:
        """Open ``folder`` (written by ``depthart export``); ``fit`` defaults to the model's."""
        self.model = OnnxModel(folder, threads=threads)
        manifest = self.model.manifest
        self.sampling = sampling if sampling is not None else EXPECTED
        if self.sampling.stochastic:
            raise DepthcoreError(
                "--backend onnxruntime: decoding 'sample' is not exported (use greedy or expected)"
            )
        self.fit = fit if fit is not None else manifest["input"]["fit"]
        if self.fit not in ("pad", "stretch"):
            raise DepthcoreError(f"fit must be 'pad' or 'stretch', got {self.fit!r}")
        self.device = torch.device("cpu")  # where the torch-side tensors live
        self.vae = None  # no torch modules: the graphs are the model
        self.space = manifest["space"]
        self.image_size = int(manifest["image_size"])
        self.seed = self.sampling.seed if seed is None else seed
        self.near_far_ratio = near_far_ratio
        self.dtype = None

    def input_record(self) -> dict[str, Any]:
        """As :meth:`DepthPredictor.input_record`, with the backend and the exported decoding."""
        record = super().input_record()
        if self.model.kind == "depthart":
            record["decoding"] = self.sampling.decoding
        return {**record, "backend": "onnxruntime", "export": str(self.model.folder)}

    def _infer(
        self, rgb_B3SS: torch.Tensor, *, samples: int, seed: int, want_scales: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None, torch.Tensor | None]:
        """The graphs on square inputs in [-1, 1]: (pred_BSS, K x scale_BSS, std_BSS)."""
        if samples > 0:
            if self.model.kind == "regression":  # one deterministic pass: no spread
                return self._infer_once(rgb_B3SS, want_scales, with_std=True)
            raise DepthcoreError("--backend onnxruntime: --samples is not supported (no sampling)")
        return self._infer_once(rgb_B3SS, want_scales, with_std=False)

    def _infer_once(
        self, rgb_B3SS: torch.Tensor, want_scales: bool, with_std: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None, torch.Tensor | None]:
        gen = self.model.predict(
            rgb_B3SS.cpu().numpy(), self.sampling.decoding, keep_scales=want_scales
        )
        pred_BSS = torch.from_numpy(np.ascontiguousarray(gen.pred_B1SS[:, 0]))
        scales = None
        if gen.scales_K_B1SS is not None:
            scales = [torch.from_numpy(np.ascontiguousarray(s[:, 0])) for s in gen.scales_K_B1SS]
        return pred_BSS, scales, torch.zeros_like(pred_BSS) if with_std else None


def load_onnx_predictor(
    model: str | None, fit: Fit | None, decoding: str, seed: int, precision: str, device: str
) -> OnnxPredictor:
    """The predictor ``depthart predict --backend onnxruntime`` options ask for (CPU, fp32)."""
    if model is None:
        raise CheckpointError("--backend onnxruntime needs --model DIR (from `depthart export`)")
    if precision != "fp32" or device == "cuda":
        raise DepthcoreError(
            "--backend onnxruntime runs fp32 on the CPU: drop --precision/--device"
        )
    return OnnxPredictor(model, fit=fit, sampling=sampling_for(decoding, seed), seed=seed)
