"""A seeded, vectorised numpy ray caster for procedural indoor/outdoor scenes.

The embedded default pipeline has no real dataset, so it trains and evaluates
on frames rendered here and written in the real file formats. What matters
for depth is exactness: the distance, planar depth, normals and plane ids
come straight from the ray/surface intersection, so every downstream
conversion (distance -> planar depth, lens-shift intrinsics, plane metrics)
can be checked against ground truth that is correct by construction.

Conventions (those of Hypersim): the camera looks down its -z axis, x right,
y up; ``M_cam_from_uv`` maps ``[u, v, 1]`` (u, v in [-1, 1] at pixel centres,
v = +1 on the top row) to a camera-frame ray. World z is up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from depthcore.synth.primitives import Box, Cylinder, FaceInfo, Primitive, Rect, Sphere

__all__ = [
    "Box",
    "Camera",
    "Cylinder",
    "Light",
    "PlaneInfo",
    "Rect",
    "Render",
    "Scene",
    "Sphere",
    "default_M_cam_from_uv",
    "pinhole_M_cam_from_uv",
    "render",
]


def default_M_cam_from_uv(  # noqa: N802
    width: int, height: int, fov_x_deg: float = 60.0
) -> np.ndarray:
    """Hypersim's default camera: horizontal fov 60 deg, square pixels, centred."""
    tx = np.tan(np.deg2rad(fov_x_deg) / 2.0)
    return np.diag([tx, tx * height / width, -1.0])


def pinhole_M_cam_from_uv(  # noqa: N802
    fx: float, fy: float, cx: float, cy: float, width: int, height: int
) -> np.ndarray:
    """``M_cam_from_uv`` of an OpenCV pinhole (pixel centres at integer coordinates)."""
    return np.array(
        [
            [width / (2 * fx), 0.0, (width / 2 - 0.5 - cx) / fx],
            [0.0, height / (2 * fy), -(height / 2 - 0.5 - cy) / fy],
            [0.0, 0.0, -1.0],
        ]
    )


@dataclass(frozen=True)
class Camera:
    """A camera pose (``R_world_from_cam`` columns = camera x, y, z in world) and intrinsics."""

    R_world_from_cam: np.ndarray
    position: np.ndarray
    M_cam_from_uv: np.ndarray = field(default_factory=lambda: default_M_cam_from_uv(4, 3))

    @classmethod
    def look_at(
        cls,
        eye: np.ndarray | tuple[float, float, float],
        target: np.ndarray | tuple[float, float, float],
        M_cam_from_uv: np.ndarray | None = None,
        up: tuple[float, float, float] = (0.0, 0.0, 1.0),
    ) -> Camera:
        """A camera at ``eye`` looking at ``target`` with world ``up`` kept upright."""
        eye_3, f = np.asarray(eye, float), np.asarray(target, float) - np.asarray(eye, float)
        f /= np.linalg.norm(f)
        x = np.cross(f, np.asarray(up, float))
        if np.linalg.norm(x) < 1e-9:  # looking straight up/down: any horizontal x works
            x = np.cross(f, np.array([0.0, 1.0, 0.0]))
        x /= np.linalg.norm(x)
        y = np.cross(x, f)
        M = default_M_cam_from_uv(4, 3) if M_cam_from_uv is None else np.asarray(M_cam_from_uv)
        return cls(np.stack([x, y, -f], axis=1), eye_3, M)

    @classmethod
    def from_intrinsics(
        cls,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        width: int,
        height: int,
        R_world_from_cam: np.ndarray,
        position: np.ndarray,
    ) -> Camera:
        """A camera from OpenCV intrinsics at resolution ``width`` x ``height``."""
        M = pinhole_M_cam_from_uv(fx, fy, cx, cy, width, height)
        return cls(np.asarray(R_world_from_cam, float), np.asarray(position, float), M)

    def intrinsics(self, height: int, width: int) -> np.ndarray:
        """The OpenCV ``K_33`` at this resolution (only for a pinhole ``M_cam_from_uv``)."""
        M = self.M_cam_from_uv
        if abs(M[0, 1]) + abs(M[1, 0]) + abs(M[2, 0]) + abs(M[2, 1]) > 1e-9 or M[2, 2] != -1.0:
            raise ValueError(f"M_cam_from_uv is not a plain pinhole: {M.tolist()}")
        fx, fy = width / (2 * M[0, 0]), height / (2 * M[1, 1])
        cx, cy = width / 2 - 0.5 - M[0, 2] * fx, height / 2 - 0.5 + M[1, 2] * fy
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def rays_cam(self, height: int, width: int) -> np.ndarray:
        """Camera-frame rays ``(H, W, 3)`` through the pixel centres (not normalised)."""
        u = np.linspace(-1 + 1 / width, 1 - 1 / width, width)
        v = np.linspace(-1 + 1 / height, 1 - 1 / height, height)[::-1]
        U, V = np.meshgrid(u, v)
        uv1_HW3 = np.stack([U, V, np.ones_like(U)], axis=-1)
        return uv1_HW3 @ np.asarray(self.M_cam_from_uv, float).T


@dataclass(frozen=True)
class Light:
    """A light of colour ``rgb`` (watts-like units). ``radius`` > 0 makes a spherical area
    light and ``half_u``/``half_v`` a downward-facing rectangular panel: both give soft shadows."""

    position: tuple[float, float, float]
    rgb: tuple[float, float, float]
    radius: float = 0.0
    half_u: tuple[float, float, float] = (0.0, 0.0, 0.0)
    half_v: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def is_panel(self) -> bool:
        return bool(np.any(self.half_u) or np.any(self.half_v))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random points on the light's surface, ``(n, 3)``."""
        p = np.broadcast_to(np.asarray(self.position, float), (n, 3)).copy()
        if self.radius > 0:
            g = rng.normal(size=(n, 3))
            p += self.radius * g / np.linalg.norm(g, axis=1, keepdims=True)
        if self.is_panel:
            ab = rng.uniform(-1, 1, (n, 2))
            p += ab[:, :1] * np.asarray(self.half_u) + ab[:, 1:] * np.asarray(self.half_v)
        return p


class PlaneInfo(NamedTuple):
    """One planar face of a scene: ids, the owner's label (``wall``, ``floor``, ``table``...),
    the face name (``front`` for rectangles, ``top``... for boxes) and its world plane."""

    plane_id: int
    entity_id: int
    label: str
    face: str
    normal_3: np.ndarray
    point_3: np.ndarray


@dataclass(frozen=True)
class Scene:
    """Surfaces (entity id = index), lights, ambient light, the colour seen through openings,
    and the builder's hints for camera placement (``eye_min``/``eye_max`` box, ``targets``,
    ``openings``: centre and inward normal of windows with nothing behind them)."""

    objects: tuple[Primitive, ...]
    lights: tuple[Light, ...]
    ambient: tuple[float, float, float] = (0.05, 0.05, 0.05)
    sky: tuple[float, float, float] = (3.0, 3.5, 4.5)
    style: str = "hypersim"
    eye_min: tuple[float, float, float] = (0.0, 0.0, 1.0)
    eye_max: tuple[float, float, float] = (1.0, 1.0, 1.8)
    targets: tuple[tuple[float, float, float], ...] = ((0.5, 0.5, 1.0),)
    openings: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()

    def plane_offsets(self) -> np.ndarray:
        """First plane id of each object (objects own consecutive ids for their planar faces)."""
        counts = [obj.n_faces for obj in self.objects]
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    def planes(self) -> list[PlaneInfo]:
        """Every planar face, indexed by the ids that :func:`render` writes to ``plane_id_HW``."""
        out = []
        for entity, (obj, base) in enumerate(zip(self.objects, self.plane_offsets(), strict=True)):
            for k, f in enumerate(obj.faces()):
                f: FaceInfo
                out.append(
                    PlaneInfo(int(base) + k, entity, obj.label, f.face, f.normal_3, f.point_3)
                )
        return out


class Render(NamedTuple):
    """One rendered frame. ``distance_HW`` is Euclidean distance to the camera centre and
    ``planar_HW`` the z-depth (both NaN where the ray leaves the scene); ``normal_HW3`` is in
    the camera frame, facing the camera; ``entity_HW``/``plane_id_HW`` are -1 where none."""

    hdr_HW3: np.ndarray  # noqa: N815
    distance_HW: np.ndarray  # noqa: N815
    planar_HW: np.ndarray  # noqa: N815
    entity_HW: np.ndarray  # noqa: N815
    normal_HW3: np.ndarray  # noqa: N815
    plane_id_HW: np.ndarray  # noqa: N815


def _closest_hit(
    objects: tuple[Primitive, ...], o_N3: np.ndarray, d_N3: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest intersection over all objects: (t, object index, normal, face, uv)."""
    n = len(d_N3)
    t_N, idx_N = np.full(n, np.inf), np.full(n, -1, np.int64)
    normal_N3, face_N, uv_N2 = np.zeros((n, 3)), np.full(n, -1, np.int64), np.zeros((n, 2))
    for i, obj in enumerate(objects):
        hit = obj.intersect(o_N3, d_N3)
        closer = hit.t_N < t_N
        t_N = np.where(closer, hit.t_N, t_N)
        idx_N[closer] = i
        normal_N3[closer], face_N[closer], uv_N2[closer] = (
            hit.normal_N3[closer],
            hit.face_N[closer],
            hit.uv_N2[closer],
        )
    return t_N, idx_N, normal_N3, face_N, uv_N2


def _may_hit(obj: Primitive, o_3N: np.ndarray, d_3N: np.ndarray, tmax_N: np.ndarray) -> np.ndarray:
    """Cheap bounding-sphere test: which unit rays may hit ``obj`` before ``tmax_N``.

    Takes component-major ``(3, N)`` float32 arrays: contiguous rows keep this
    hot loop (lights x samples x objects) memory-bound rather than overhead-bound.
    """
    centre_3, radius = obj.bounds()
    ox, oy, oz = (o_3N[k] - np.float32(centre_3[k]) for k in range(3))
    b_N = ox * d_3N[0] + oy * d_3N[1] + oz * d_3N[2]
    disc_N = b_N * b_N - (ox * ox + oy * oy + oz * oz) + np.float32(radius * radius)
    root_N = np.sqrt(np.maximum(disc_N, 0.0))
    return (disc_N >= 0) & (root_N > b_N) & (-b_N - root_N < tmax_N)


def _irradiance(
    scene: Scene, p_N3: np.ndarray, n_N3: np.ndarray, rng: np.random.Generator, samples: int
) -> np.ndarray:
    """Lambertian irradiance ``(N, 3)`` with shadows averaged over ``samples`` light points."""
    casters = tuple(obj for obj in scene.objects if obj.casts_shadow)
    total_N3 = np.zeros((len(p_N3), 3))
    p_3N = np.ascontiguousarray(p_N3.T, dtype=np.float32)
    n_3N = np.ascontiguousarray(n_N3.T, dtype=np.float32)
    for light in scene.lights:
        for _ in range(samples):
            to_3N = light.sample(rng, len(p_N3)).T.astype(np.float32) - p_3N
            dist_N = np.sqrt((to_3N * to_3N).sum(axis=0))
            l_3N = to_3N / dist_N
            gain_N = np.maximum((n_3N * l_3N).sum(axis=0), 0.0) / dist_N**2
            if light.is_panel:  # panels face down
                gain_N *= np.maximum(l_3N[2], 0.0)
            lit = gain_N > 0
            for obj in casters:
                cand = np.flatnonzero(lit & _may_hit(obj, p_3N, l_3N, dist_N))
                if len(cand):
                    t_N = obj.intersect(p_N3[cand], l_3N[:, cand].T.astype(np.float64)).t_N
                    lit[cand[t_N < dist_N[cand] - 1e-4]] = False
            total_N3 += (gain_N * lit)[:, None] * np.asarray(light.rgb)[None, :]
    return total_N3 / samples


def render(
    scene: Scene,
    camera: Camera,
    height: int,
    width: int,
    *,
    exposure: float = 1.0,
    shadow_samples: int = 3,
    seed: int = 0,
) -> Render:
    """Ray-cast ``scene`` from ``camera`` at ``height`` x ``width``; deterministic given ``seed``.

    ``exposure`` scales the HDR radiance (so tone mapping has work to do);
    ``shadow_samples`` light points per light and pixel give soft shadows.
    """
    rays_HW3 = camera.rays_cam(height, width)
    rays_N3 = rays_HW3.reshape(-1, 3)
    R = np.asarray(camera.R_world_from_cam, float)
    d_N3 = rays_N3 @ R.T
    d_N3 /= np.linalg.norm(d_N3, axis=1, keepdims=True)
    o_13 = np.asarray(camera.position, float)[None, :]
    t_N, idx_N, normal_N3, face_N, uv_N2 = _closest_hit(scene.objects, o_13, d_N3)
    hit = idx_N >= 0

    flip = np.einsum("ij,ij->i", normal_N3, d_N3) > 0
    normal_N3[flip] *= -1.0
    albedo_N3 = np.zeros((len(t_N), 3))
    for i, obj in enumerate(scene.objects):
        m = idx_N == i
        if m.any():
            albedo_N3[m] = obj.texture.albedo(uv_N2[m])
    rng = np.random.default_rng(seed)
    p_M3 = o_13 + t_N[hit, None] * d_N3[hit] + 1e-5 * normal_N3[hit]
    light_M3 = _irradiance(scene, p_M3, normal_N3[hit], rng, shadow_samples)
    hdr_N3 = np.empty((len(t_N), 3))
    hdr_N3[hit] = albedo_N3[hit] * (np.asarray(scene.ambient) + light_M3)
    sky_lift_N = 0.6 + 0.4 * np.clip(d_N3[~hit, 2], 0.0, 1.0)
    hdr_N3[~hit] = np.asarray(scene.sky)[None, :] * sky_lift_N[:, None]

    distance_N = np.where(hit, t_N, np.nan)
    ray_norm_N = np.linalg.norm(rays_N3, axis=1)
    planar_N = distance_N * np.abs(rays_N3[:, 2]) / ray_norm_N
    plane_base = scene.plane_offsets() if scene.objects else np.zeros(0, np.int64)
    plane_N = np.where(hit & (face_N >= 0), plane_base[np.maximum(idx_N, 0)] + face_N, -1)
    normal_cam_N3 = np.where(hit[:, None], normal_N3 @ R, np.nan)
    shape = (height, width)
    return Render(
        hdr_HW3=(hdr_N3 * exposure).reshape(*shape, 3).astype(np.float32),
        distance_HW=distance_N.reshape(shape).astype(np.float32),
        planar_HW=planar_N.reshape(shape).astype(np.float32),
        entity_HW=idx_N.reshape(shape).astype(np.int16),
        normal_HW3=normal_cam_N3.reshape(*shape, 3).astype(np.float32),
        plane_id_HW=plane_N.reshape(shape).astype(np.int32),
    )
