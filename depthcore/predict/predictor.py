"""Image(s) in, depth out: the user-facing predictor over a trained checkpoint.

``DepthPredictor`` implements the evaluation ``DepthModel`` protocol (``space``,
``predict_batch``) and a convenience ``__call__`` for one image of any size.

Arbitrary input sizes. ``fit="stretch"`` (the default; checkpoints record it as
``input_fit``): the image is area-resized to ``S x S`` ignoring the aspect ratio by the
resize the features stage applies to training frames (``data.transforms.resize_rgb``),
as the official DepthART training and evaluation do; the prediction is resampled
bilinearly (half-pixel centres) back to the input size. ``fit="pad"`` (opt-in): the
longer side is resized to ``S``, the shorter side padded by repeating edge pixels and
the border cropped off the prediction; the model never saw such inputs in training.
No tiling: the model sees the whole scene once, as in training.

From the normalised space to depth: :func:`depthcore.spaces.normalised_to_depth`, a
documented display convention (a prediction is affine-invariant in the model's space).
To get metric depth, align the normalised prediction to a few known depths in
the model's space (``depthcore.alignment``), as the evaluation does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from depthcore.device import resolve_device
from depthcore.errors import CheckpointError, DataError, DepthcoreError
from depthcore.models.generate import (
    EXPECTED,
    SamplingConfig,
    encode_image,
    generate,
    prepare_for_inference,
)
from depthcore.models.model_dir import load_depth_checkpoint
from depthcore.models.references import REFERENCE_PREDICTORS, DepthModel
from depthcore.predict.images import ContentBox, Fit, crop_to_input, fit_to_square
from depthcore.spaces import DEFAULT_NEAR_FAR_RATIO, INPUT_FIT, normalised_to_depth, rgb_to_model

URI_SCHEMES = (
    "models:/",
    "runs:/",
    "mlflow-artifacts:/",
    "s3://",
    "file://",
    "http://",
    "https://",
)


@dataclasses.dataclass
class DepthResult:
    """One image's prediction, every map at the input resolution (H x W).

    ``depth``: affine-invariant depth (see the module docstring for the unit);
    ``pred``: the prediction in the model's normalised ``space`` (the mean over
    samples when sampling); ``scales``: the cumulative prediction after each of
    the K scales (normalised space); ``std``: per-pixel standard deviation over
    the sampled rollouts (normalised-space units).
    """

    depth: np.ndarray
    pred: np.ndarray
    space: str
    scales: list[np.ndarray] | None = None
    std: np.ndarray | None = None


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class DepthPredictor:
    """A loaded DepthART model that turns uint8 RGB images into depth maps."""

    #: The checkpoint's record of its training sources (:mod:`depthcore.data.domain`).
    trained_on: dict[str, Any] | None = None

    def __init__(
        self,
        vae: torch.nn.Module | None,
        var: torch.nn.Module,
        *,
        space: str,
        image_size: int,
        device: str | torch.device = "cpu",
        fit: Fit = INPUT_FIT,
        sampling: SamplingConfig | None = None,
        seed: int | None = None,
        near_far_ratio: float = DEFAULT_NEAR_FAR_RATIO,
        precision: Literal["fp32", "bf16"] = "fp32",
    ) -> None:
        """Wrap a loaded (vae, var) pair; ``space`` and ``image_size`` come from its checkpoint.

        ``vae=None``: ``var`` is the regression baseline, RGB in [-1, 1] to the
        normalised map in one deterministic pass (no tokens, so no sampling).

        ``sampling`` defaults to expected decoding (the exact mean code embedding
        under the top-k 900 / top-p 0.9 distribution, what ``evaluate.decoding``
        scores by default); ``SamplingConfig()`` is the official DepthART sampling
        (5 samples averaged per token); ``seed`` (default ``sampling.seed``) makes every
        call reproducible; ``near_far_ratio`` fixes the depth convention of
        :func:`normalised_to_depth`; ``precision="bf16"`` runs the transformer and the
        VQ-VAE convolutions in bf16 (about 2-3x faster on a CPU with AVX512-BF16; the
        prediction within a tested tolerance of fp32, see ``depthcore.models.generate``).
        """
        if fit not in ("pad", "stretch"):
            raise ValueError(f"fit must be 'pad' or 'stretch', got {fit!r}")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.device = torch.device(resolve_device(device))
        self.vae = None if vae is None else vae.to(self.device)
        self.var = var.to(self.device)
        self.dtype = torch.bfloat16 if precision == "bf16" else None
        if self.vae is None:  # the regression baseline: one fp32 pass, nothing to lay out
            self.var.eval().requires_grad_(False)
        else:
            prepare_for_inference(self.vae, self.var, self.dtype)
        self.space = space
        self.image_size = int(image_size)
        self.fit: Fit = fit
        self.sampling = sampling if sampling is not None else EXPECTED
        self.seed = self.sampling.seed if seed is None else seed
        self.near_far_ratio = near_far_ratio

    @classmethod
    def from_pretrained(
        cls,
        path_or_uri: str | Path,
        device: str | torch.device = "cpu",
        **kwargs: Any,
    ) -> DepthPredictor:
        """Load a local checkpoint file or a local (downloaded) MLflow model folder.

        The input preprocessing is the checkpoint's ``input_fit`` (``stretch`` when the
        entry is absent: every checkpoint was trained on stretched frames) unless
        ``fit`` is passed (not None) in ``kwargs``. MLflow URIs (``models:/...``) are
        resolved by :func:`depthcore.tracking.pyfunc.load_predictor`, which calls this on
        the downloaded files. ``kwargs`` go to the constructor (``fit``, ``sampling``, ...).
        """
        text = str(path_or_uri)
        if text.startswith(URI_SCHEMES):
            raise CheckpointError(
                f"{text}: a model URI; load it with depthcore.tracking.pyfunc.load_predictor"
            )
        loaded = load_depth_checkpoint(text)
        vae, var, config, meta = loaded.vae, loaded.net, loaded.config, loaded.meta
        image_size = int(meta.get("image_size", config.image_size))
        if kwargs.get("fit") is None:
            kwargs["fit"] = meta.get("input_fit", INPUT_FIT)
        predictor = cls(
            vae, var, space=meta["space"], image_size=image_size, device=device, **kwargs
        )
        predictor.trained_on = meta.get("trained_on")  # None: an older checkpoint
        return predictor

    def input_record(self) -> dict[str, Any]:
        """How images reach the model and how its output returns (for evaluation records)."""
        return {
            "fit": self.fit,
            "resize": "area (depthcore.data.transforms.resize_rgb)",
            "size": [self.image_size, self.image_size],
            "output": "S x S in the model space; callers resample bilinearly to the GT size",
            "decoding": "one pass" if self.vae is None else self.sampling.decoding,
        }

    def model_input(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[ContentBox]]:
        """The exact tensor ``rgb_B3SS`` in [-1, 1] the model sees, and each image's box."""
        fitted = [fit_to_square(rgb, self.image_size, self.fit) for rgb in images]
        rgb_B3SS = torch.from_numpy(np.stack([f for f, _ in fitted])).permute(0, 3, 1, 2)
        return rgb_to_model(rgb_B3SS), [box for _, box in fitted]

    # --- the DepthModel protocol -------------------------------------------------------------
    def predict_batch(self, rgb_BHW3: np.ndarray) -> np.ndarray:
        """Predict ``pred_BHW`` float32 in the model's space, at the model resolution.

        With ``fit="pad"`` the padded border is already cropped, so the output has
        the input's aspect ratio (longer side = ``image_size``); callers upsample.
        """
        rgb_BHW3 = np.asarray(rgb_BHW3)
        if rgb_BHW3.ndim != 4 or rgb_BHW3.shape[-1] != 3 or rgb_BHW3.dtype != np.uint8:
            raise DataError(
                f"predict_batch expects uint8 (B,H,W,3), got {rgb_BHW3.dtype} {rgb_BHW3.shape}"
            )
        if len(rgb_BHW3) == 0:
            raise DataError("predict_batch got an empty batch")
        rgb_B3SS, (box, *_) = self.model_input(rgb_BHW3)
        pred_BSS, _, _ = self._infer(rgb_B3SS, samples=0, seed=self.seed)
        crop = pred_BSS[:, box.top : box.top + box.height, box.left : box.left + box.width]
        return crop.cpu().numpy().astype(np.float32)

    # --- images of any size ------------------------------------------------------------------
    def __call__(
        self,
        image: np.ndarray,
        *,
        scales: bool = False,
        samples: int = 0,
        seed: int | None = None,
    ) -> DepthResult:
        """Predict one ``HxWx3`` uint8 image; every returned map is ``HxW``."""
        return self.predict_images([image], scales=scales, samples=samples, seed=seed)[0]

    def predict_images(
        self,
        images: Sequence[np.ndarray],
        *,
        batch_size: int = 8,
        scales: bool = False,
        samples: int = 0,
        seed: int | None = None,
        progress: bool = False,
    ) -> list[DepthResult]:
        """Predict a list of images of different sizes, ``batch_size`` at a time.

        ``samples=N > 0`` runs N stochastic rollouts per image (the model's
        top-k/top-p sampling) and returns their mean and per-pixel std. Results
        are deterministic for a given ``seed`` (default: the predictor's seed),
        batch size and image order.
        """
        from tqdm.auto import tqdm

        for i, image in enumerate(images):
            if (
                image.ndim != 3
                or image.shape[-1] != 3
                or image.dtype != np.uint8
                or 0 in image.shape
            ):
                raise DataError(f"image {i}: expected uint8 HxWx3, got {image.dtype} {image.shape}")
        generator_seed = self.seed if seed is None else seed
        results: list[DepthResult] = []
        bar = tqdm(total=len(images), unit="img", disable=not progress)
        for batch in _chunks(len(images), batch_size):
            rgb_B3SS, boxes = self.model_input(images[batch])
            pred_BSS, scales_KBSS, std_BSS = self._infer(
                rgb_B3SS,
                samples=samples,
                seed=generator_seed + batch.start,
                want_scales=scales,
            )
            for b, (image, box) in enumerate(zip(images[batch], boxes, strict=True)):
                size = image.shape[:2]
                pred = crop_to_input(pred_BSS[b], box, size)
                results.append(
                    DepthResult(
                        depth=normalised_to_depth(pred, self.space, self.near_far_ratio),
                        pred=pred,
                        space=self.space,
                        scales=None
                        if scales_KBSS is None
                        else [crop_to_input(s_BSS[b], box, size) for s_BSS in scales_KBSS],
                        std=None if std_BSS is None else crop_to_input(std_BSS[b], box, size),
                    )
                )
            bar.update(batch.stop - batch.start)
        bar.close()
        return results

    @torch.no_grad()
    def _infer(
        self, rgb_B3SS: torch.Tensor, *, samples: int, seed: int, want_scales: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None, torch.Tensor | None]:
        """Model on square inputs in [-1, 1]: (pred_BSS, K x scale_BSS, std_BSS) or None."""
        B = rgb_B3SS.shape[0]
        rgb_B3SS = rgb_B3SS.to(self.device)
        if self.vae is None:  # the regression baseline: one pass, no spread, one "scale"
            pred_BSS = self.var(rgb_B3SS)[:, 0].float()
            std_BSS = torch.zeros_like(pred_BSS) if samples > 0 else None
            return pred_BSS, [pred_BSS] if want_scales else None, std_BSS
        prefix_BLC = encode_image(self.vae, rgb_B3SS, self.dtype)
        sampling = self.sampling
        n = max(samples, 1)
        if samples > 0 and not sampling.stochastic:  # N rollouts must differ: sample
            sampling = dataclasses.replace(sampling, greedy=False, expected=False)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        gen = generate(
            self.vae,
            self.var,
            prefix_BLC,
            rgb_B3HW=rgb_B3SS,
            sampling=sampling,
            use_cache=True,
            return_scales=want_scales,
            generator=generator,
            repeats=n,  # N rollouts per image share one prefix pass
        )
        pred_BNSS = gen.pred_B1HW[:, 0].float().reshape(B, n, *gen.pred_B1HW.shape[-2:])
        std_BSS = pred_BNSS.std(dim=1, unbiased=False) if samples > 0 else None
        scales_KBSS = None
        if want_scales and gen.scales_K_B1HW is not None:
            scales_KBSS = [
                s_B1SS[:, 0].float().reshape(B, n, *s_B1SS.shape[-2:]).mean(dim=1)
                for s_B1SS in gen.scales_K_B1HW
            ]
        return pred_BNSS.mean(dim=1), scales_KBSS, std_BSS


def load_depth_model(spec: str, **kwargs: Any) -> DepthModel:
    """The model named by ``spec``: ``reference:<name>`` or a local checkpoint path.

    What the evaluate stage scores: a content-free reference or a trained model.
    """
    if spec.startswith("reference:"):
        name = spec.removeprefix("reference:")
        if name not in REFERENCE_PREDICTORS:
            raise DepthcoreError(
                f"unknown reference predictor {name!r}; choose from {sorted(REFERENCE_PREDICTORS)}"
            )
        return REFERENCE_PREDICTORS[name]()
    return DepthPredictor.from_pretrained(spec, **kwargs)
