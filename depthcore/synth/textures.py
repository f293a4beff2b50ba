"""Procedural surface textures for the synthetic renderer.

Textures give the RGB images the high-frequency structure that real rooms have
(wood grain, tiles, posters); without them a depth model could read depth off
flat shading alone. Every texture is a pure function of a surface coordinate
in metres, so a frame is fully determined by the scene and the camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

TextureKind = Literal["solid", "noise", "stripes", "checks", "gradient"]
TEXTURE_KINDS: tuple[TextureKind, ...] = ("solid", "noise", "stripes", "checks", "gradient")


def _lattice_noise(uv_N2: np.ndarray, perm_512: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] on a unit lattice (hashed corners, smoothstep blend)."""
    cell_N2 = np.floor(uv_N2)
    frac_N2 = uv_N2 - cell_N2
    ci_N2 = cell_N2.astype(np.int64) & 255
    w_N2 = frac_N2 * frac_N2 * (3.0 - 2.0 * frac_N2)
    values_256 = perm_512[:256].astype(np.float32) / 255.0

    def corner(dx: int, dy: int) -> np.ndarray:
        return values_256[perm_512[perm_512[(ci_N2[:, 0] + dx) & 255] + ((ci_N2[:, 1] + dy) & 255)]]

    top = corner(0, 0) * (1 - w_N2[:, 0]) + corner(1, 0) * w_N2[:, 0]
    bottom = corner(0, 1) * (1 - w_N2[:, 0]) + corner(1, 1) * w_N2[:, 0]
    return top * (1 - w_N2[:, 1]) + bottom * w_N2[:, 1]


@dataclass(frozen=True)
class Texture:
    """A two-colour procedural pattern evaluated on surface coordinates in metres.

    ``scale`` is the pattern period in metres; ``angle`` rotates stripes and
    gradients; ``seed`` fixes the noise lattice.
    """

    kind: TextureKind = "solid"
    color_a: tuple[float, float, float] = (0.7, 0.7, 0.7)
    color_b: tuple[float, float, float] = (0.3, 0.3, 0.3)
    scale: float = 0.5
    angle: float = 0.0
    seed: int = 0
    _perm: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in TEXTURE_KINDS:
            raise ValueError(f"unknown texture kind {self.kind!r} (known: {TEXTURE_KINDS})")
        perm = np.random.default_rng(self.seed).permutation(256)
        object.__setattr__(self, "_perm", np.concatenate([perm, perm]))

    def mix_weight(self, uv_N2: np.ndarray) -> np.ndarray:
        """The blend weight in [0, 1] between ``color_a`` (0) and ``color_b`` (1)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        p_N2 = uv_N2 / self.scale
        along_N = p_N2[:, 0] * c + p_N2[:, 1] * s
        if self.kind == "solid":
            return np.zeros(len(uv_N2), np.float32)
        if self.kind == "stripes":
            return (np.floor(along_N * 2.0) % 2).astype(np.float32)
        if self.kind == "checks":
            return ((np.floor(p_N2[:, 0]) + np.floor(p_N2[:, 1])) % 2).astype(np.float32)
        if self.kind == "gradient":
            return (0.5 + 0.5 * np.sin(along_N * np.pi)).astype(np.float32)
        octaves = [(1.0, 0.55), (2.03, 0.3), (4.1, 0.15)]
        total = sum(_lattice_noise(p_N2 * f, self._perm) * a for f, a in octaves)
        return np.asarray(total, np.float32)

    def albedo(self, uv_N2: np.ndarray) -> np.ndarray:
        """Albedo (N, 3) float32 in [0, 1] at surface coordinates ``uv_N2`` (metres)."""
        w_N1 = self.mix_weight(uv_N2)[:, None]
        a_3 = np.asarray(self.color_a, np.float32)
        b_3 = np.asarray(self.color_b, np.float32)
        return (a_3 * (1.0 - w_N1) + b_3 * w_N1).astype(np.float32)


def random_texture(
    rng: np.random.Generator, kinds: tuple[TextureKind, ...] = TEXTURE_KINDS
) -> Texture:
    """A random texture: two related colours, a period between 5 cm and 1.5 m."""
    base = rng.uniform(0.15, 0.9, 3)
    other = np.clip(base * rng.uniform(0.3, 1.2) + rng.normal(0, 0.1, 3), 0.02, 0.98)
    return Texture(
        kind=kinds[int(rng.integers(len(kinds)))],
        color_a=tuple(float(x) for x in base),
        color_b=tuple(float(x) for x in other),
        scale=float(np.exp(rng.uniform(np.log(0.05), np.log(1.5)))),
        angle=float(rng.uniform(0, np.pi)),
        seed=int(rng.integers(2**31)),
    )
