"""What every ``depthart`` subcommand shares: its constants, its one-line messages and
range-checked numbers (so the parser and the commands agree on both)."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

OUTPUTS = ("npy", "png", "color", "ply")
DEFAULT_OUTPUTS = "npy,png,color"
PRECISIONS = ("fp32", "bf16")
GREY_NAMES = ("grey", "gray")  # a grey ramp: near is white, far is black
CHAMPION_URI = "models:/depthart@champion"
LOCAL_REGISTRY = "mlflow.db"
# Photos over this many pixels are refused (--max-pixels raises it): a 50-Mpx photo needs
# about 1.5 GB in predict (decoded RGB, the full-size float32 map and its outputs).
DEFAULT_MAX_PIXELS = 50_000_000

_EPILOG = """\
outputs per image NAME (by --outputs):
  NAME_depth.npy        float32 HxW affine-invariant depth at the input resolution
                        (no metric unit: the scene's near end is 1, see depthcore.predict.predictor)
  NAME_depth.png        16-bit PNG: 0 = invalid, else
                        depth = depth_min + (v-1)/65534*(depth_max-depth_min),
                        depth_min/depth_max in the PNG text chunks
  NAME_depth_color.png  --colormap (turbo: near = red (warm), far = blue; grey: near = white)
  NAME.ply              coloured binary point cloud (pinhole, horizontal --fov)
  NAME_scales.png       with --scales: input and the cumulative prediction after each scale
  NAME_std.npy/.png     with --samples N: per-pixel std over the N rollouts (normalised units)
"""


def _say(fmt: str, *args: object) -> None:
    """One line to stderr, printed above the progress bar rather than through it."""
    tqdm.write(fmt % args if args else fmt, file=sys.stderr)


def _number_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number strictly between ``low`` and ``high`` (NaN, inf
    and out-of-range values are refused before anything is loaded or written)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and low < value < high):
            bound = f"> {low:g}" if math.isinf(high) else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
        return value

    return parse


def module_doc(name: str) -> str:
    """The docstring of module ``name``, read from its source without importing it.

    The parser shows the docstrings of the modules behind ``align``, ``profile`` and
    ``lineage`` as their help; importing those modules (the tracking registry and lineage
    pull in evaluation and run records) slowed every ``depthart predict`` start (issue
    28), so each command imports its modules when it runs and the help reads the text.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ImportError(f"{name}: no Python source to read the docstring from")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"), filename=spec.origin)
    return ast.get_docstring(tree, clean=False) or ""
