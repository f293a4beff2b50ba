"""Photos in, model inputs out, predictions back to the photo: the predictor's image side.

Decoding (EXIF orientation, alpha, greyscale, 16-bit) with a note for every conversion,
the square model input (``stretch`` as the training frames, or ``pad``) and the way
back from a model-resolution map to the input size.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from depthcore.data.transforms import resize_rgb
from depthcore.errors import DataError

Fit = Literal["pad", "stretch"]


def load_rgb(
    source: str | Path | bytes,
    name: str | None = None,
    max_pixels: int | None = None,
    limit_hint: str = "",
) -> tuple[np.ndarray, list[str]]:
    """Decode a JPEG/PNG (path or bytes) to ``rgb_HW3`` uint8, plus notes on conversions made.

    EXIF orientation is applied; RGBA loses its alpha, greyscale is replicated to
    three channels and 16-bit images are reduced to 8 bits, each with a note so
    the CLI can warn. An image over ``max_pixels`` is refused from its header,
    before its pixels are decoded (``limit_hint`` says how to raise the limit).
    Raises :class:`DataError` naming ``name`` (or the path).
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    if isinstance(source, str | Path) and not Path(source).is_file():
        raise DataError(f"{label}: no such file")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise DataError(
                    f"{label}: {width}x{height} = {width * height / 1e6:.1f} Mpx is over the "
                    f"limit of {max_pixels / 1e6:g} Mpx{limit_hint}"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:  # not an OSError: a claimed size this big
        raise DataError(f"{label}: image too large to decode safely: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{label}: cannot read image: {exc}") from exc
    if img.width == 0 or img.height == 0:
        raise DataError(f"{label}: zero-size image ({img.width}x{img.height})")
    notes: list[str] = []
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        notes.append(f"16-bit greyscale ({img.mode}) reduced to 8 bits and replicated to RGB")
        grey = np.asarray(img).astype(np.float64)
        scale = 257.0 if grey.max() <= 65535 else grey.max() / 255.0
        grey8 = np.clip(np.rint(grey / scale), 0, 255).astype(np.uint8)
        return np.repeat(grey8[..., None], 3, axis=-1), notes
    if img.mode == "F":
        raise DataError(f"{label}: floating-point image (mode F) is not a photo")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        notes.append(f"alpha channel dropped ({img.mode} -> RGB)")
    elif img.mode in ("L", "1"):
        notes.append(f"greyscale ({img.mode}) replicated to RGB")
    elif img.mode not in ("RGB", "P"):
        notes.append(f"colour mode {img.mode} converted to RGB")
    return np.asarray(img.convert("RGB"), dtype=np.uint8), notes


@dataclasses.dataclass(frozen=True)
class ContentBox:
    """Where the resized image sits inside the S x S model input."""

    top: int
    left: int
    height: int
    width: int


def fit_to_square(
    rgb_HW3: np.ndarray, size: int, fit: Fit = "pad"
) -> tuple[np.ndarray, ContentBox]:
    """Area-resize (and edge-pad) an image to ``size x size``; returns it and the content box.

    ``stretch`` is exactly the training frames' resize (``resize_rgb`` to S x S).
    """
    H, W = rgb_HW3.shape[:2]
    if fit == "stretch":
        h, w = size, size
    elif fit == "pad":
        scale = size / max(H, W)
        h, w = max(1, round(H * scale)), max(1, round(W * scale))
    else:
        raise ValueError(f"fit must be 'pad' or 'stretch', got {fit!r}")
    resized_hw3 = resize_rgb(rgb_HW3, (h, w))
    top, left = (size - h) // 2, (size - w) // 2
    pad = ((top, size - h - top), (left, size - w - left), (0, 0))
    return np.pad(resized_hw3, pad, mode="edge"), ContentBox(top, left, h, w)


def crop_to_input(map_SS: torch.Tensor, box: ContentBox, size: tuple[int, int]) -> np.ndarray:
    """Crop the content box of a model-resolution map and upsample it bilinearly to ``size``."""
    crop_11hw = map_SS[box.top : box.top + box.height, box.left : box.left + box.width][None, None]
    up_11HW = F.interpolate(crop_11hw.float(), size=size, mode="bilinear", align_corners=False)
    return up_11HW[0, 0].cpu().numpy().astype(np.float32)
