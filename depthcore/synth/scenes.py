"""Seeded procedural scenes: rooms for training and the benchmark-like distribution shifts.

Styles differ in the depth statistics a model must cope with:
``hypersim`` furnished rooms with windows (NaN through the openings), ``nyu``
small cluttered rooms, ``tum`` desk close-ups (0.4-3 m), ``eth3d`` large halls
with far depth and open ceilings/ends (no surface -> inf in that format), and
``ibims`` rooms whose wall/floor/table planes are labelled for plane metrics.
:mod:`depthcore.synth.closeups` adds small things on the furniture tops of a room
and cameras looking down at them from close (the training source's close-ups).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from depthcore.synth.primitives import Box, Cylinder, Primitive, Rect, Sphere
from depthcore.synth.render import Camera, Light, Scene
from depthcore.synth.textures import Texture, random_texture

Style = Literal["hypersim", "nyu", "tum", "eth3d", "ibims"]
STYLES: tuple[Style, ...] = ("hypersim", "nyu", "tum", "eth3d", "ibims")

_WALL_KINDS = ("solid", "noise", "stripes", "gradient")


def _wall_holes(
    rng: np.random.Generator, length: float, height: float, n: int, door: bool
) -> tuple[tuple[float, float, float, float], ...]:
    """Non-overlapping windows (and optionally one door) along a wall of ``length``."""
    holes = []
    slots = np.linspace(0.0, length, n + int(door) + 1)
    for k in range(n + int(door)):
        lo, hi = slots[k], slots[k + 1]
        w = min(rng.uniform(0.8, 2.0), 0.8 * (hi - lo))
        s0 = rng.uniform(lo + 0.1 * (hi - lo), hi - w - 0.05 * (hi - lo))
        if door and k == 0:
            holes.append((s0, 0.0, s0 + min(w, 1.0), min(2.1, 0.85 * height)))
        else:
            q0 = rng.uniform(0.7, 1.1)
            holes.append((s0, q0, s0 + w, min(q0 + rng.uniform(0.9, 1.6), 0.95 * height)))
    return tuple(holes)


Opening = tuple[tuple[float, float, float], tuple[float, float, float]]


def _shell(
    rng: np.random.Generator,
    size: tuple[float, float, float],
    windows: int,
    doors: int = 0,
    ceiling_holes: tuple[tuple[float, float, float, float], ...] = (),
    enclosed: bool = True,
) -> tuple[list[Primitive], list[Opening]]:
    """Floor, ceiling and four walls of an X x Y x Z room with windows and doors.

    When ``enclosed``, doors open onto a corridor wall and windows onto a facade 3-12 m
    away, except one small window per room (with probability 0.7) that opens onto
    nothing, so no-surface regions stay a few percent of most views. Otherwise every
    opening looks out onto nothing (halls with inf depth). Returns the surfaces and the
    open windows (centre, inward normal), from which a close view sees mostly no surface.
    """
    X, Y, Z = size
    floor_tex = random_texture(rng, ("checks", "noise", "stripes"))
    ceil_tex = Texture(
        "noise", (0.85, 0.85, 0.82), (0.75, 0.75, 0.72), 1.0, seed=int(rng.integers(1e9))
    )
    walls = [
        ((0, 0, 0), (X, 0, 0)),
        ((X, 0, 0), (0, Y, 0)),
        ((X, Y, 0), (-X, 0, 0)),
        ((0, Y, 0), (0, -Y, 0)),
    ]
    per_wall = np.bincount(rng.integers(0, 4, windows), minlength=4)
    door_wall = set(rng.choice(4, size=min(doors, 4), replace=False).tolist())
    out: list[Primitive] = [
        Rect((0, 0, 0), (X, 0, 0), (0, Y, 0), floor_tex, "floor"),
        Rect((0, 0, Z), (X, 0, 0), (0, Y, 0), ceil_tex, "ceiling", ceiling_holes),
    ]
    backdrops: list[Primitive] = []
    openings: list[Opening] = []
    for k, (origin, u) in enumerate(walls):
        length = float(np.linalg.norm(u))
        holes = list(_wall_holes(rng, length, Z, int(per_wall[k]), k in door_wall))
        u_hat = np.asarray(u, float) / length
        inward = np.array([-u_hat[1], u_hat[0], 0.0])
        for j, (s0, q0, s1, q1) in enumerate(holes):
            is_door = k in door_wall and j == 0
            if is_door or (enclosed and (openings or rng.uniform() < 0.3)):
                if not enclosed:
                    continue
                gap = 1.5 if is_door else float(rng.uniform(3.0, 12.0))
                # The backdrop reaches sideways to fill oblique views through the hole, but
                # stops short of the wall's other holes, so an open window stays open.
                left = min([2.0 + gap, *(s0 - b1 - 0.3 for _, _, b1, _ in holes if b1 <= s0)])
                right = min([2.0 + gap, *(b0 - s1 - 0.3 for b0, _, _, _ in holes if b0 >= s1)])
                left, right = max(left, 0.05), max(right, 0.05)
                corner = np.asarray(origin, float) + (s0 - left) * u_hat - gap * inward
                extent = (s1 - s0 + left + right) * u_hat
                tex = random_texture(rng, _WALL_KINDS)
                backdrops.append(
                    Rect(tuple(corner), tuple(extent), (0, 0, q1 + 2.0 + gap), tex, "exterior")
                )
                continue
            if enclosed:  # the one open window of a room is small: a few % of most views
                sc, qc = (s0 + s1) / 2, (q0 + q1) / 2
                hw, hh = (
                    min(s1 - s0, rng.uniform(0.5, 0.9)) / 2,
                    min(q1 - q0, rng.uniform(0.6, 1.0)) / 2,
                )
                holes[j] = (s0, q0, s1, q1) = (sc - hw, qc - hh, sc + hw, qc + hh)
            centre = np.asarray(origin, float) + (s0 + s1) / 2 * u_hat
            centre[2] = (q0 + q1) / 2
            openings.append((tuple(centre.tolist()), tuple(inward.tolist())))
        out.append(
            Rect(origin, u, (0, 0, Z), random_texture(rng, _WALL_KINDS), "wall", tuple(holes))
        )
    return out + backdrops, openings


def _furniture(
    rng: np.random.Generator,
    size: tuple[float, float, float],
    n_boxes: int,
    n_spheres: int,
    n_cylinders: int,
    scale: float = 1.0,
) -> list[Primitive]:
    """Boxes (cupboards, beds), spheres and cylinders standing on the floor, inside the room."""
    X, Y, Z = size
    out: list[Primitive] = []
    for _ in range(n_boxes):
        h = rng.uniform(0.15, 0.9, 3) * scale * np.array([1.0, 1.0, 1.2])
        h[2] = min(h[2], 0.45 * Z)
        c = (rng.uniform(h[0], X - h[0]), rng.uniform(h[1], Y - h[1]), h[2])
        out.append(Box(c, tuple(h), float(rng.uniform(0, np.pi)), random_texture(rng), "box"))
    for _ in range(n_spheres):
        r = rng.uniform(0.1, 0.45) * scale
        c = (rng.uniform(r, X - r), rng.uniform(r, Y - r), r + rng.uniform(0, 0.8))
        out.append(Sphere(c, r, random_texture(rng)))
    for _ in range(n_cylinders):
        r, hgt = rng.uniform(0.08, 0.35) * scale, rng.uniform(0.3, 0.9 * Z)
        base = (rng.uniform(r, X - r), rng.uniform(r, Y - r), 0.0)
        out.append(Cylinder(base, r, hgt, random_texture(rng)))
    return out


def _lights(
    rng: np.random.Generator, size: tuple[float, float, float], power: float
) -> list[Light]:
    """One or two ceiling panels plus one or two soft bulbs, warm to cool tints."""
    X, Y, Z = size
    out = []
    for _ in range(int(rng.integers(1, 3))):
        tint = rng.uniform(0.8, 1.0, 3)
        pos = (rng.uniform(0.2, 0.8) * X, rng.uniform(0.2, 0.8) * Y, Z - 0.02)
        out.append(Light(pos, tuple(power * tint), half_u=(0.4, 0, 0), half_v=(0, 0.4, 0)))
    for _ in range(int(rng.integers(1, 3))):
        tint = rng.uniform(0.7, 1.0, 3)
        pos = (rng.uniform(0.1, 0.9) * X, rng.uniform(0.1, 0.9) * Y, rng.uniform(0.5, 0.9) * Z)
        out.append(Light(pos, tuple(0.5 * power * tint), radius=0.15))
    return out


def _room(rng: np.random.Generator, style: Style) -> Scene:
    """A furnished room; ``nyu`` is smaller and more cluttered, ``ibims`` adds labelled tables."""
    if style == "nyu":
        size = (rng.uniform(3.0, 5.5), rng.uniform(3.0, 5.5), rng.uniform(2.4, 2.9))
        counts, windows = (rng.integers(8, 16), rng.integers(2, 5), rng.integers(2, 5)), 1
    elif style == "ibims":
        size = (rng.uniform(3.5, 7.0), rng.uniform(3.5, 7.0), rng.uniform(2.5, 3.0))
        counts, windows = (rng.integers(1, 4), rng.integers(0, 2), rng.integers(0, 2)), 1
    else:
        size = (rng.uniform(4.0, 9.0), rng.uniform(4.0, 9.0), rng.uniform(2.6, 3.4))
        counts, windows = (rng.integers(4, 9), rng.integers(1, 4), rng.integers(1, 4)), 1
    objects, openings = _shell(rng, size, int(rng.integers(windows, windows + 2)), doors=1)
    scale = 0.7 if style == "nyu" else 1.0
    objects += _furniture(rng, size, *(int(c) for c in counts), scale=scale)
    X, Y, Z = size
    n_tables = int(rng.integers(1, 3)) if style == "ibims" else int(rng.integers(0, 2))
    for _ in range(n_tables):
        h = (rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.6), rng.uniform(0.36, 0.4))
        c = (rng.uniform(h[0], X - h[0]), rng.uniform(h[1], Y - h[1]), h[2])
        objects.append(Box(c, h, float(rng.uniform(0, np.pi)), random_texture(rng), "table"))
    targets = [(rng.uniform(0, X), rng.uniform(0, Y), rng.uniform(0.3, 0.7) * Z) for _ in range(8)]
    return Scene(
        tuple(objects),
        tuple(_lights(rng, size, float(rng.uniform(4.0, 12.0)))),
        style=style,
        openings=tuple(openings),
        eye_min=(0.2 * X, 0.2 * Y, 1.1),
        eye_max=(0.8 * X, 0.8 * Y, min(1.9, Z - 0.5)),
        targets=tuple(targets),
    )


def _desk(rng: np.random.Generator) -> Scene:
    """A desk with small things on it in a small room: close-range depth (TUM-like)."""
    size = (rng.uniform(3.5, 5.0), rng.uniform(3.5, 5.0), rng.uniform(2.5, 2.9))
    X, Y, Z = size
    objects, openings = _shell(rng, size, int(rng.integers(0, 2)))
    cx, cy, top = X / 2, Y * 0.7, rng.uniform(0.7, 0.8)
    hx, hy = rng.uniform(0.6, 0.9), rng.uniform(0.35, 0.5)
    objects.append(Box((cx, cy, top / 2), (hx, hy, top / 2), 0.0, random_texture(rng), "table"))
    for _ in range(int(rng.integers(6, 13))):
        x, y = cx + rng.uniform(-0.85, 0.85) * hx, cy + rng.uniform(-0.85, 0.85) * hy
        kind = rng.integers(3)
        if kind == 0:
            h = rng.uniform(0.03, 0.14, 3)
            objects.append(
                Box((x, y, top + h[2]), tuple(h), float(rng.uniform(0, np.pi)), random_texture(rng))
            )
        elif kind == 1:
            r = rng.uniform(0.03, 0.1)
            objects.append(Sphere((x, y, top + r), r, random_texture(rng)))
        else:
            objects.append(
                Cylinder(
                    (x, y, top),
                    rng.uniform(0.03, 0.07),
                    rng.uniform(0.06, 0.3),
                    random_texture(rng),
                )
            )
    lights = [Light((cx, cy - 0.3, Z - 0.05), tuple(rng.uniform(3, 6) * np.ones(3)), radius=0.2)]
    lights += _lights(rng, size, float(rng.uniform(3.0, 8.0)))[:1]
    return Scene(
        tuple(objects),
        tuple(lights),
        style="tum",
        openings=tuple(openings),
        eye_min=(cx - hx, cy - hy - 1.0, top + 0.3),
        eye_max=(cx + hx, cy - hy - 0.3, top + 0.8),
        targets=tuple(
            (cx + rng.uniform(-hx, hx), cy + rng.uniform(-hy, hy), top) for _ in range(8)
        ),
    )


def _hall(rng: np.random.Generator) -> Scene:
    """A large hall with pillars, an open far end and skylights: far depth and inf holes."""
    size = (rng.uniform(15.0, 40.0), rng.uniform(10.0, 25.0), rng.uniform(6.0, 12.0))
    X, Y, Z = size
    sky = tuple(
        (s0, q0, s0 + rng.uniform(3, 8), q0 + rng.uniform(3, 6))
        for s0, q0 in zip(rng.uniform(0, X - 8, 3), rng.uniform(0, Y - 6, 3), strict=True)
    )
    objects, openings = _shell(
        rng, size, int(rng.integers(2, 6)), doors=2, ceiling_holes=sky, enclosed=False
    )
    far_wall = objects[3]  # floor, ceiling, then the walls at y=0, x=X (the far end), ...
    gap = rng.uniform(0.3, 0.6) * Y
    s0 = rng.uniform(0, Y - gap)
    opening = ((s0, 0.0, s0 + gap, 0.8 * Z),)
    objects[3] = Rect(
        far_wall.origin, far_wall.u_axis, far_wall.v_axis, far_wall.texture, "wall", opening
    )
    r = rng.uniform(0.3, 0.7)
    for x in np.arange(rng.uniform(3, 6), X - 2, rng.uniform(4, 8)):
        for y in (Y * 0.3, Y * 0.7):
            objects.append(Cylinder((x, y, 0.0), r, Z, random_texture(rng), "pillar"))
    objects += _furniture(rng, size, int(rng.integers(3, 8)), 1, 0, scale=2.0)
    sun = Light((X / 2, Y / 2, Z * 4), tuple(rng.uniform(0.8, 1.0, 3) * 40.0 * Z * Z), radius=2.0)
    lights = [sun] + _lights(rng, size, float(rng.uniform(30.0, 80.0)))
    return Scene(
        tuple(objects),
        tuple(lights),
        ambient=(0.15, 0.15, 0.17),
        style="eth3d",
        openings=tuple(openings),
        eye_min=(1.0, 0.4 * Y, 1.4),
        eye_max=(0.3 * X, 0.6 * Y, 2.0),
        targets=tuple(
            (rng.uniform(0.6, 1.0) * X, rng.uniform(0, Y), rng.uniform(0.5, 4.0)) for _ in range(8)
        ),
    )


def make_room(rng: np.random.Generator, style: Style = "hypersim") -> Scene:
    """A random scene of the given style (see the module docstring); deterministic in ``rng``."""
    if style not in STYLES:
        raise ValueError(f"unknown scene style {style!r} (known: {', '.join(STYLES)})")
    if style == "tum":
        return _desk(rng)
    if style == "eth3d":
        return _hall(rng)
    return _room(rng, style)


def inside(obj: Primitive, p_3: np.ndarray, margin: float) -> bool:
    """Whether ``p_3`` is within ``margin`` of the inside of a solid object."""
    return inside_any(obj, np.asarray(p_3, dtype=np.float64)[None, :], margin)


def inside_any(obj: Primitive, p_K3: np.ndarray, margin: float) -> bool:
    """Whether any of the points ``p_K3`` is within ``margin`` of the inside of a solid object.

    One array pass per object instead of a call per point (a close-up's clear-view test
    asks 24 points of every object). Boxes and cylinders are elementwise arithmetic, the
    same per point as one at a time; a sphere's distance is ``np.linalg.norm`` of each
    point alone, as it always was.
    """
    if isinstance(obj, Sphere):
        centre = np.asarray(obj.center)
        return any(bool(np.linalg.norm(p - centre) < obj.radius + margin) for p in p_K3)
    if isinstance(obj, Cylinder):
        rel_K3 = p_K3 - np.asarray(obj.base)
        radial_K = np.hypot(rel_K3[:, 0], rel_K3[:, 1]) < obj.radius + margin
        z_K = rel_K3[:, 2]
        return bool(np.any(radial_K & (-margin < z_K) & (z_K < obj.height + margin)))
    if isinstance(obj, Box):
        c, s = np.cos(obj.yaw), np.sin(obj.yaw)
        rel_K3 = p_K3 - np.asarray(obj.center)
        x_K, y_K = rel_K3[:, 0], rel_K3[:, 1]
        local_K3 = np.stack([c * x_K + s * y_K, -s * x_K + c * y_K, rel_K3[:, 2]], axis=1)
        return bool(np.any(np.all(np.abs(local_K3) < np.asarray(obj.half) + margin, axis=1)))
    return False


def sample_camera(
    rng: np.random.Generator, scene: Scene, M_cam_from_uv: np.ndarray | None = None
) -> Camera:
    """A camera inside the scene's eye box, outside every object, looking at one of its targets."""
    lo, hi = np.asarray(scene.eye_min), np.asarray(scene.eye_max)
    eye = lo
    for _ in range(100):
        eye = rng.uniform(lo, hi)
        if not any(inside(obj, eye, 0.3) for obj in scene.objects):
            break
    min_range = 0.5 if scene.style == "tum" else 1.5  # no views into a nearby wall
    for _ in range(20):
        pick = np.asarray(scene.targets[int(rng.integers(len(scene.targets)))])
        target = pick + rng.normal(0, 0.2, 3)
        if np.linalg.norm(target - eye) > min_range:
            break
    return Camera.look_at(eye, target, M_cam_from_uv)
