"""A generated video: a camera walking through one synthetic room, rgb and true depth per frame.

The video benchmark (``bench/bench_video.py``) and the video tests need clips whose
every frame has exact depth; a real sequence (TUM RGB-D) needs a download. The
camera starts at a view of :func:`depthcore.synth.scenes.sample_camera` and steps
towards what it looks at, so consecutive frames overlap as in a hand-held clip and
the true depth changes smoothly: a model whose depth flickers shows it.
"""

from __future__ import annotations

import numpy as np

from depthcore.data.hypersim.reader import tone_map
from depthcore.errors import DepthcoreError
from depthcore.synth.render import Camera, default_M_cam_from_uv, render
from depthcore.synth.scenes import make_room, sample_camera

#: How far the camera moves a frame (metres): about 1 m over a 16-frame clip, less than the
#: >= 1.5 m that :func:`sample_camera` keeps between the eye and what it looks at.
STEP_METRES = 0.06


def render_walk(
    frames: int, height: int, width: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``rgb_THW3`` uint8 and planar ``depth_THW`` float32 (NaN: no surface) of one walk.

    Deterministic in ``seed``. The look direction is kept; the eye moves forward by
    :data:`STEP_METRES` a frame.
    """
    if frames < 2 or height < 8 or width < 8:
        raise DepthcoreError(f"a walk needs >= 2 frames of >= 8x8, got {frames} x {height}x{width}")
    rng = np.random.default_rng(seed)
    scene = make_room(rng, "hypersim")
    M = default_M_cam_from_uv(width, height)
    start = sample_camera(rng, scene, M)
    forward_3 = -start.R_world_from_cam[:, 2]  # the camera looks down its -z axis
    step_3 = STEP_METRES * forward_3
    rgb, depth = [], []
    for t in range(frames):
        camera = Camera(start.R_world_from_cam, start.position + t * step_3, M)
        out = render(scene, camera, height, width, shadow_samples=1, seed=seed + t)
        surface_HW = np.isfinite(out.planar_HW)
        rgb.append(tone_map(out.hdr_HW3, surface_HW))
        depth.append(np.where(surface_HW, out.planar_HW, np.nan).astype(np.float32))
    return np.stack(rgb), np.stack(depth)
