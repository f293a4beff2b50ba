"""Would Winograd convolutions make generation faster on CPU? Figures to read, not a kernel we use.

Issue 28 item 1 asks for 1.5x the official sampler's CPU seconds in fp32; both samplers do the
same arithmetic, and the VQ-VAE's 3x3 convolutions are ~52 % of it. Winograd F(2x2, 3x3)
needs 2.25x fewer multiplications. This prints, per layer shape of the d16 VQ-VAE
(channels, side), one image, one thread:

* oneDNN's direct convolution (``F.conv2d``), NCHW and channels-last;
* Winograd written in torch ops (tile transforms, 16 batched matmuls, output transform) and
  its largest error against ``F.conv2d``;
* the 16 batched matmuls alone: what Winograd would cost with free transforms (a fused kernel).

    python bench/bench_winograd.py --repeats 10
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

# F(2x2, 3x3) transform matrices (Lavin & Gray, 2016)
B_T = torch.tensor([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=torch.float32)
G = torch.tensor([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float32)
A_T = torch.tensor([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=torch.float32)
SHAPES = ((640, 16), (320, 32), (320, 64), (160, 128), (160, 256))  # d16 decoder: (width, side)


def winograd_weight(w_OI33: torch.Tensor) -> torch.Tensor:
    """The transformed kernel, (16, O, I): done once per layer, as a sampler would."""
    u_OI44 = G @ w_OI33 @ G.T
    return u_OI44.permute(2, 3, 0, 1).reshape(16, *w_OI33.shape[:2]).contiguous()


def winograd_conv(x_1IHW: torch.Tensor, u_16OI: torch.Tensor, b_O: torch.Tensor) -> torch.Tensor:
    """3x3 convolution, padding 1, stride 1, of one image with an even side."""
    _, channels, height, width = x_1IHW.shape
    d_IthtwAA = F.pad(x_1IHW, (1, 1, 1, 1))[0].unfold(1, 4, 2).unfold(2, 4, 2)
    th, tw = d_IthtwAA.shape[1:3]
    v_16IT = (B_T @ d_IthtwAA @ B_T.T).permute(3, 4, 0, 1, 2).reshape(16, channels, th * tw)
    m_16OT = torch.bmm(u_16OI, v_16IT)
    out = m_16OT.shape[1]
    m_OthtwAA = m_16OT.reshape(4, 4, out, th, tw).permute(2, 3, 4, 0, 1)
    y_Othtw22 = A_T @ m_OthtwAA @ A_T.T
    y_OHW = y_Othtw22.permute(0, 1, 3, 2, 4).reshape(out, height, width)
    return (y_OHW + b_O[:, None, None])[None]


def seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(channels: int, side: int, gen: torch.Generator, repeats: int) -> list[float]:
    """[NCHW s, channels-last s, Winograd s, its max error, batched matmuls s] of one layer."""
    x = torch.randn(1, channels, side, side, generator=gen)
    w = torch.randn(channels, channels, 3, 3, generator=gen) / (9 * channels) ** 0.5
    b = torch.randn(channels, generator=gen)
    u = winograd_weight(w)
    error = (F.conv2d(x, w, b, padding=1) - winograd_conv(x, u, b)).abs().max().item()
    x_cl, w_cl = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
    v = torch.randn(16, channels, (side // 2) ** 2, generator=gen)
    return [
        seconds(lambda: F.conv2d(x, w, b, padding=1), repeats),
        seconds(lambda: F.conv2d(x_cl, w_cl, b, padding=1), repeats),
        seconds(lambda: winograd_conv(x, u, b), repeats),
        error,
        seconds(lambda: torch.bmm(u, v), repeats),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    print("| channels | side | oneDNN NCHW ms | channels-last ms | Winograd (torch ops) ms "
          "| its max error | batched matmuls alone ms |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for channels, side in SHAPES:
        nchw, cl, wino, error, matmuls = measure(channels, side, gen, args.repeats)
        print(f"| {channels} | {side} | {nchw * 1e3:.2f} | {cl * 1e3:.2f} | {wino * 1e3:.2f} "
              f"| {error:.1e} | {matmuls * 1e3:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
