"""Close-range views of furniture tops: small things on tables and a camera looking down at them.

The room cameras of :mod:`depthcore.synth.scenes` stand at eye height and look
across the room from at least 1.5 m, so a model trained on them never sees a
table top from arm's length, where depth spans a fraction of a metre and the
small objects on it are most of the picture. Real Hypersim trajectories do
pass close over kitchen counters, desks and dining tables. This module adds
that to any scene: :func:`add_clutter` stands a few small boxes, spheres and
cylinders (a few cm to ~30 cm: books, cups, bottles, fruit) on every furniture
top (adding a table when the room has none), and :func:`sample_closeup_camera`
places an eye 0.4-1.2 m from a point on one of those tops, above it, looking
down at it at 30-70 degrees.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from depthcore.synth.primitives import Box, Cylinder, Primitive, Rect, Sphere
from depthcore.synth.render import Camera, Scene
from depthcore.synth.scenes import inside, inside_any
from depthcore.synth.textures import random_texture

#: Label of the small objects, so they are never taken for furniture tops themselves.
CLUTTER = "clutter"
#: Range (m) and downward pitch (deg) of the close-up cameras.
CLOSE_RANGE = (0.4, 1.2)
CLOSE_PITCH_DEG = (30.0, 70.0)
_TOP_HEIGHT = (0.35, 1.3)  # a top a person can look down on from arm's length
_MIN_HALF_WIDTH = 0.2  # a top narrower than 40 cm carries nothing worth a close-up
_EYE_MARGIN = 0.1  # clearance of the eye from every surface (m)


class Top(NamedTuple):
    """The horizontal top of a box: world centre (at the top surface), half extents, yaw."""

    center_3: np.ndarray
    half_x: float
    half_y: float
    yaw: float

    def point(self, a: float, b: float) -> np.ndarray:
        """The world point at local fractions ``a``, ``b`` in [-1, 1] of the half extents."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        lx, ly = a * self.half_x, b * self.half_y
        return self.center_3 + np.array([c * lx - s * ly, s * lx + c * ly, 0.0])

    @property
    def area(self) -> float:
        return 4.0 * self.half_x * self.half_y


def _top_of(box: Box) -> Top:
    cx, cy, cz = box.center
    hx, hy, hz = box.half
    return Top(np.array([cx, cy, cz + hz]), float(hx), float(hy), float(box.yaw))


def furniture_tops(scene: Scene) -> list[Top]:
    """Tops of the scene's tables and box furniture at 0.35-1.3 m that are at least 40 cm wide."""
    tops = []
    for obj in scene.objects:
        if isinstance(obj, Box) and obj.label != CLUTTER:
            top = _top_of(obj)
            if (
                _TOP_HEIGHT[0] <= top.center_3[2] <= _TOP_HEIGHT[1]
                and min(top.half_x, top.half_y) >= _MIN_HALF_WIDTH
            ):
                tops.append(top)
    return tops


def room_bounds(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The axis-aligned box spanned by the scene's floor and ceiling (where an eye may be)."""
    floors = [o for o in scene.objects if isinstance(o, Rect) and o.label in ("floor", "ceiling")]
    if not floors:
        raise ValueError(f"a {scene.style} scene without floor or ceiling has no room bounds")
    corners = np.array(
        [
            np.asarray(r.origin, float) + a * np.asarray(r.u_axis, float) + b * np.asarray(r.v_axis)
            for r in floors
            for a in (0.0, 1.0)
            for b in (0.0, 1.0)
        ]
    )
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    if hi[2] - lo[2] < 1.0:  # a floor without ceiling: allow a standing person's reach
        hi[2] = lo[2] + 2.5
    return lo, hi


def _new_table(rng: np.random.Generator, scene: Scene) -> Box:
    """A desk- or counter-like table inside the scene's eye box, clear of other furniture
    when 30 tries find such a place (an overlap only merges the two in the render)."""
    lo, hi = np.asarray(scene.eye_min), np.asarray(scene.eye_max)
    for _ in range(30):
        half = (rng.uniform(0.35, 0.8), rng.uniform(0.3, 0.55), rng.uniform(0.34, 0.47))
        centre = (rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]), half[2])
        table = Box(centre, half, float(rng.uniform(0, np.pi)), random_texture(rng), "table")
        top = _top_of(table)
        probes = [top.point(a, b) - [0, 0, half[2]] for a in (-1, 0, 1) for b in (-1, 0, 1)]
        if not any(inside_any(obj, np.stack(probes), 0.05) for obj in scene.objects):
            break
    return table


def _small_object(rng: np.random.Generator, at_3: np.ndarray) -> tuple[Primitive, float]:
    """One small thing standing at ``at_3`` (a point of a top) and its footprint radius."""
    kind = rng.choice(3, p=(0.45, 0.35, 0.2))
    tex = random_texture(rng)
    x, y, z = at_3
    if kind == 0:  # books, boxes, plates: from flat to ~30 cm
        half = (rng.uniform(0.02, 0.15), rng.uniform(0.02, 0.15), rng.uniform(0.01, 0.15))
        yaw = float(rng.uniform(0, np.pi))
        return Box((x, y, z + half[2]), half, yaw, tex, CLUTTER), float(np.hypot(*half[:2]))
    if kind == 1:  # cups, bottles, vases
        r = rng.uniform(0.015, 0.07)
        return Cylinder((x, y, z), r, rng.uniform(0.04, 0.3), tex, CLUTTER), float(r)
    r = rng.uniform(0.02, 0.1)  # fruit, balls
    return Sphere((x, y, z + r), r, tex, CLUTTER), float(r)


def add_clutter(rng: np.random.Generator, scene: Scene) -> Scene:
    """``scene`` with small objects standing on every furniture top (a table added if none).

    About 5-12 objects per square metre of top, at least two per top, none overlapping
    another: a furnished room's counters and tables are rarely bare.
    """
    objects = list(scene.objects)
    tops = furniture_tops(scene)
    if not tops:
        table = _new_table(rng, scene)
        objects.append(table)
        tops = [_top_of(table)]
    for top in tops:
        n = int(np.clip(round(top.area * rng.uniform(5.0, 12.0)), 2, 12))
        placed: list[tuple[np.ndarray, float]] = []
        for _ in range(4 * n):
            if len(placed) == n:
                break
            at_3 = top.point(*rng.uniform(-0.85, 0.85, 2))
            obj, radius = _small_object(rng, at_3)
            if all(np.hypot(*(at_3 - p)[:2]) > radius + r for p, r in placed):
                placed.append((at_3, radius))
                objects.append(obj)
    return replace(scene, objects=tuple(objects))


def _clear_view(scene: Scene, eye_3: np.ndarray, point_3: np.ndarray) -> bool:
    """Whether no solid object stands between the eye and (just short of) the point."""
    points_K3 = eye_3 + np.linspace(0.0, 0.97, 24)[:, None] * (point_3 - eye_3)
    return not any(inside_any(obj, points_K3, 0.0) for obj in scene.objects)


def sample_closeup_camera(
    rng: np.random.Generator, scene: Scene, M_cam_from_uv: np.ndarray | None = None
) -> Camera:
    """A camera 0.4-1.2 m from a point on a furniture top, above it, looking down at it.

    The pitch is 30-70 degrees below the horizon from any azimuth; the eye stays in the
    room, 10 cm clear of every object, with a free line of sight to the point. Tops are
    picked in proportion to their area. Raises ValueError when the scene has no top (see
    :func:`add_clutter`) or no such eye exists.
    """
    tops = furniture_tops(scene)
    if not tops:
        raise ValueError(f"a {scene.style} scene without furniture tops has no close-up views")
    lo, hi = room_bounds(scene)
    lo, hi = lo + _EYE_MARGIN, hi - _EYE_MARGIN
    areas = np.array([t.area for t in tops])
    for _ in range(500):
        top = tops[int(rng.choice(len(tops), p=areas / areas.sum()))]
        point_3 = top.point(*rng.uniform(-0.8, 0.8, 2))
        dist = rng.uniform(*CLOSE_RANGE)
        pitch = np.deg2rad(rng.uniform(*CLOSE_PITCH_DEG))
        azimuth = rng.uniform(0.0, 2 * np.pi)
        back_3 = np.array(
            [np.cos(pitch) * np.cos(azimuth), np.cos(pitch) * np.sin(azimuth), np.sin(pitch)]
        )
        eye_3 = point_3 + dist * back_3
        if (
            np.all((lo <= eye_3) & (eye_3 <= hi))
            and not any(inside(obj, eye_3, _EYE_MARGIN) for obj in scene.objects)
            and _clear_view(scene, eye_3, point_3)
        ):
            return Camera.look_at(eye_3, point_3, M_cam_from_uv)
    raise ValueError(f"no clear close-up eye above any furniture top of this {scene.style} scene")
