"""Ray-intersectable surfaces of the synthetic scenes: rectangles, boxes, spheres, cylinders.

Each primitive intersects a batch of rays at once (numpy, no loops over
pixels) and reports, per ray, the hit distance, the surface normal, which of
its planar faces was hit (so plane masks and exact plane normals can be
annotated) and a 2-D surface coordinate in metres for texturing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from depthcore.synth.textures import Texture

EPS = 1e-6


class Hit(NamedTuple):
    """Per-ray intersection: ``t_N`` (inf on a miss), world ``normal_N3``, ``face_N``
    (index of the planar face, -1 on curved surfaces) and ``uv_N2`` (metres)."""

    t_N: np.ndarray  # noqa: N815
    normal_N3: np.ndarray  # noqa: N815
    face_N: np.ndarray  # noqa: N815
    uv_N2: np.ndarray  # noqa: N815


class FaceInfo(NamedTuple):
    """A planar face of a primitive: its name, world normal and one point on it."""

    face: str
    normal_3: np.ndarray
    point_3: np.ndarray


def _vec(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(3)


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _safe(d: np.ndarray) -> np.ndarray:
    """Replace near-zero ray components so slab divisions give +-inf-like values."""
    return np.where(np.abs(d) < 1e-12, 1e-12, d)


@dataclass(frozen=True)
class Rect:
    """A finite planar rectangle ``origin + s*u_hat + q*v_hat`` (0<=s<=|u|, 0<=q<=|v|).

    ``holes`` are rectangles ``(s0, q0, s1, q1)`` in metres with no surface:
    windows and doorways, through which rays leave the scene (NaN depth).
    """

    origin: tuple[float, float, float]
    u_axis: tuple[float, float, float]
    v_axis: tuple[float, float, float]
    texture: Texture = field(default_factory=Texture)
    label: str = "wall"
    holes: tuple[tuple[float, float, float, float], ...] = ()
    casts_shadow: bool = False

    n_faces = 1

    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        u, v = _vec(self.u_axis), _vec(self.v_axis)
        su, sv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
        u_hat, v_hat = u / su, v / sv
        n = np.cross(u_hat, v_hat)
        return u_hat, v_hat, n / np.linalg.norm(n), su, sv

    def intersect(self, o_N3: np.ndarray, d_N3: np.ndarray) -> Hit:
        u_hat, v_hat, n, su, sv = self._frame()
        denom_N = _safe(d_N3 @ n)
        t_N = ((_vec(self.origin) - o_N3) @ n) / denom_N
        rel_N3 = o_N3 + t_N[:, None] * d_N3 - _vec(self.origin)
        s_N, q_N = rel_N3 @ u_hat, rel_N3 @ v_hat
        ok = (t_N > EPS) & (s_N >= 0) & (s_N <= su) & (q_N >= 0) & (q_N <= sv)
        for s0, q0, s1, q1 in self.holes:
            ok &= ~((s_N > s0) & (s_N < s1) & (q_N > q0) & (q_N < q1))
        n_N3 = np.broadcast_to(n, (len(t_N), 3))
        uv_N2 = np.stack([s_N, q_N], axis=1)
        return Hit(np.where(ok, t_N, np.inf), n_N3, np.zeros(len(t_N), np.int64), uv_N2)

    def bounds(self) -> tuple[np.ndarray, float]:
        u, v = _vec(self.u_axis), _vec(self.v_axis)
        return _vec(self.origin) + (u + v) / 2, float(np.linalg.norm(u + v) / 2)

    def faces(self) -> list[FaceInfo]:
        return [FaceInfo("front", self._frame()[2], _vec(self.origin))]


_BOX_FACES = ("-x", "+x", "-y", "+y", "bottom", "top")
_OTHER_AXES = np.array([[1, 2], [0, 2], [0, 1]])  # the face's in-plane axes, per hit axis


@dataclass(frozen=True)
class Box:
    """An upright box (rotated by ``yaw`` about the vertical z axis): furniture, tables, pillars."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float = 0.0
    texture: Texture = field(default_factory=Texture)
    label: str = "box"
    casts_shadow: bool = True

    n_faces = 6

    def intersect(self, o_N3: np.ndarray, d_N3: np.ndarray) -> Hit:
        R = _rot_z(self.yaw)
        h = _vec(self.half)
        o_l = (o_N3 - _vec(self.center)) @ R  # world -> local: R^T x, row-vector form
        d_l = _safe(d_N3 @ R)
        t1, t2 = (-h - o_l) / d_l, (h - o_l) / d_l
        tnear_N3 = np.minimum(t1, t2)
        axis_N = np.argmax(tnear_N3, axis=1)
        rows_N = np.arange(len(axis_N))
        tmin_N = tnear_N3.max(axis=1)  # the element argmax points at
        tmax_N = np.maximum(t1, t2).min(axis=1)
        ok = (tmax_N >= tmin_N) & (tmin_N > EPS)
        sign_N = np.where(d_l[rows_N, axis_N] > 0, -1.0, 1.0)
        n_local = np.zeros((len(tmin_N), 3))
        n_local[rows_N, axis_N] = sign_N
        p_l = o_l + tmin_N[:, None] * d_l + h
        uv = p_l[rows_N[:, None], _OTHER_AXES[axis_N]]
        face = axis_N * 2 + (sign_N > 0)
        return Hit(np.where(ok, tmin_N, np.inf), n_local @ R.T, face, uv)

    def bounds(self) -> tuple[np.ndarray, float]:
        return _vec(self.center), float(np.linalg.norm(self.half))

    def faces(self) -> list[FaceInfo]:
        R, h, c = _rot_z(self.yaw), _vec(self.half), _vec(self.center)
        out = []
        for i, name in enumerate(_BOX_FACES):
            n_local = np.zeros(3)
            n_local[i // 2] = 1.0 if i % 2 else -1.0
            out.append(FaceInfo(name, R @ n_local, c + R @ (n_local * h)))
        return out


@dataclass(frozen=True)
class Sphere:
    """A sphere (curved: no planar face)."""

    center: tuple[float, float, float]
    radius: float
    texture: Texture = field(default_factory=Texture)
    label: str = "sphere"
    casts_shadow: bool = True

    n_faces = 0

    def intersect(self, o_N3: np.ndarray, d_N3: np.ndarray) -> Hit:
        oc_N3 = np.broadcast_to(o_N3 - _vec(self.center), d_N3.shape)
        b_N = np.einsum("ij,ij->i", oc_N3, d_N3)  # rays are unit length
        c_N = np.einsum("ij,ij->i", oc_N3, oc_N3) - self.radius**2
        disc_N = b_N * b_N - c_N
        root_N = np.sqrt(np.maximum(disc_N, 0.0))
        t0, t1 = -b_N - root_N, -b_N + root_N
        t_N = np.where(t0 > EPS, t0, t1)
        ok = (disc_N >= 0) & (t_N > EPS)
        n_N3 = (oc_N3 + t_N[:, None] * d_N3) / self.radius
        uv = np.stack(
            [np.arctan2(n_N3[:, 1], n_N3[:, 0]), np.arcsin(np.clip(n_N3[:, 2], -1, 1))], axis=1
        )
        return Hit(np.where(ok, t_N, np.inf), n_N3, np.full(len(t_N), -1), uv * self.radius)

    def bounds(self) -> tuple[np.ndarray, float]:
        return _vec(self.center), float(self.radius)

    def faces(self) -> list[FaceInfo]:
        return []


@dataclass(frozen=True)
class Cylinder:
    """An upright closed cylinder from ``base`` up by ``height``; its two caps are planar."""

    base: tuple[float, float, float]
    radius: float
    height: float
    texture: Texture = field(default_factory=Texture)
    label: str = "cylinder"
    casts_shadow: bool = True

    n_faces = 2

    def intersect(self, o_N3: np.ndarray, d_N3: np.ndarray) -> Hit:
        n = len(d_N3)
        oc = np.broadcast_to(o_N3 - _vec(self.base), d_N3.shape)
        a_N = np.maximum(d_N3[:, 0] ** 2 + d_N3[:, 1] ** 2, 1e-12)
        b_N = oc[:, 0] * d_N3[:, 0] + oc[:, 1] * d_N3[:, 1]
        c_N = oc[:, 0] ** 2 + oc[:, 1] ** 2 - self.radius**2
        disc_N = b_N * b_N - a_N * c_N
        root_N = np.sqrt(np.maximum(disc_N, 0.0))
        t_side = np.full(n, np.inf)
        for t_c in ((-b_N - root_N) / a_N, (-b_N + root_N) / a_N):
            z = oc[:, 2] + t_c * d_N3[:, 2]
            good = (disc_N >= 0) & (t_c > EPS) & (z >= 0) & (z <= self.height)
            t_side = np.where(good & (t_c < t_side), t_c, t_side)
        t_N, face_N = t_side, np.full(n, -1)
        dz = _safe(d_N3[:, 2])
        for face, z_cap in enumerate((0.0, self.height)):
            t_c = (z_cap - oc[:, 2]) / dz
            x, y = oc[:, 0] + t_c * d_N3[:, 0], oc[:, 1] + t_c * d_N3[:, 1]
            good = (t_c > EPS) & (x * x + y * y <= self.radius**2) & (t_c < t_N)
            t_N, face_N = np.where(good, t_c, t_N), np.where(good, face, face_N)
        p = oc + np.where(np.isfinite(t_N), t_N, 0.0)[:, None] * d_N3
        side_n = np.stack([p[:, 0], p[:, 1], np.zeros(n)], axis=1) / self.radius
        cap_n = np.zeros((n, 3))
        cap_n[:, 2] = np.where(face_N == 1, 1.0, -1.0)
        normal = np.where((face_N >= 0)[:, None], cap_n, side_n)
        uv_side = np.stack([np.arctan2(p[:, 1], p[:, 0]) * self.radius, p[:, 2]], axis=1)
        uv = np.where((face_N >= 0)[:, None], p[:, :2], uv_side)
        return Hit(t_N, normal, face_N, uv)

    def bounds(self) -> tuple[np.ndarray, float]:
        centre = _vec(self.base) + [0.0, 0.0, self.height / 2]
        return centre, float(np.hypot(self.radius, self.height / 2))

    def faces(self) -> list[FaceInfo]:
        b = _vec(self.base)
        return [
            FaceInfo("bottom", np.array([0.0, 0.0, -1.0]), b),
            FaceInfo("top", np.array([0.0, 0.0, 1.0]), b + [0.0, 0.0, self.height]),
        ]


Primitive = Rect | Box | Sphere | Cylinder
