"""PNG encoder settings for ``depthart predict``'s outputs: ms per 640 x 480 map and size.

A smooth depth map with sensor-like noise (16-bit, as ``save_depth_png16`` writes it) and
its turbo colour map (as ``save_rgb_png`` writes it), each encoded in memory with PIL at
zlib level 6 (PIL's default), level 1, and level 1 with the run-length and Huffman-only
strategies, then with :func:`depthcore.png.encode_png` (one filter, libdeflate) at levels
1 and 2, unfiltered and with the Up filter; one thread, median of ``--repeats``::

    python bench/bench_png.py --repeats 20
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import zlib

import numpy as np
from PIL import Image

from depthcore.png import FILTER_NONE, FILTER_UP, encode_png
from depthcore.viz import PNG16_FILTER, PNG_LEVEL, PNG_RGB_FILTER, colorize

SETTINGS = {
    "level 6 (PIL default)": {"compress_level": 6},
    "level 1": {"compress_level": 1},
    "level 1, Z_RLE": {"compress_level": 1, "compress_type": zlib.Z_RLE},
    "level 1, Z_HUFFMAN_ONLY": {"compress_level": 1, "compress_type": zlib.Z_HUFFMAN_ONLY},
}


def maps(height: int = 480, width: int = 640) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    depth = (np.sin(x / 50) + np.cos(y / 70) + 2) * 10000 + rng.normal(0, 50, (height, width))
    return {"depth16": depth.astype(np.uint16), "colour": colorize(depth.astype(np.float32))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    chosen = {"depth16": (PNG16_FILTER, PNG_LEVEL), "colour": (PNG_RGB_FILTER, PNG_LEVEL)}
    print("| map | setting | ms (median) | KiB | used |")
    print("|---|---|---:|---:|---|")
    for name, array in maps().items():
        encoders = {
            f"PIL {label}": (lambda a, kw=kwargs: _pil(a, kw), None)
            for label, kwargs in SETTINGS.items()
        }
        for filt, level in ((f, lv) for f in (FILTER_NONE, FILTER_UP) for lv in (1, 2)):
            label = f"encode_png {'Up' if filt == FILTER_UP else 'no'} filter, libdeflate {level}"
            encoders[label] = (
                lambda a, f=filt, lv=level: encode_png(a, filter_type=f, level=lv),
                (filt, level),
            )
        for label, (encode, setting) in encoders.items():
            times, size = [], 0
            for _ in range(args.repeats):
                start = time.perf_counter()
                size = len(encode(array))
                times.append(time.perf_counter() - start)
            used = setting == chosen[name]
            print(f"| {name} | {label} | {1000 * statistics.median(times):.1f} | "
                  f"{size // 1024} | {'yes' if used else ''} |")  # fmt: skip


def _pil(array: np.ndarray, kwargs: dict) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **kwargs)
    return buf.getvalue()


if __name__ == "__main__":
    main()
