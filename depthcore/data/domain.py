"""What a model was trained on, by source: the embedded synthetic scenes, Hypersim, own folders.

Why: the default profile trains on procedurally rendered rooms (sized for a 15-minute
CPU run). Such a model's depth for a photo demonstrates the machinery, it is not a
product; the checkpoint records its training sources (:func:`trained_on`, in its
``meta``) so ``depthart predict`` and the model card can say so in one line.

Frame keys are ``<scene>/...`` (the preprocess stage). Hypersim scenes are
``ai_VVV_NNN``: the real dataset's volumes are 001-055, and the synth stage numbers its
scenes from volume :data:`SYNTH_FIRST_VOLUME` up (``depthcore.synth.hypersim.scene_name``,
kept apart on purpose so the two never clash), so the volume tells them apart. Any
other scene is an own-data folder (``preprocess.folders`` names its frames' scene).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

EMBEDDED = "embedded_synthetic"
HYPERSIM = "hypersim"
FOLDER_PREFIX = "folder:"
#: The first volume number of the synth stage's scene names.
SYNTH_FIRST_VOLUME = 100
_HYPERSIM_SCENE = re.compile(r"ai_(\d{3})_\d{3}")
#: The one line shown when a model trained only on the embedded scenes meets photos.
DEMO_WARNING = (
    "this model was trained only on the embedded synthetic scenes: its depth for photos "
    "demonstrates the machinery, it is not a product (docs/users-guide.md, "
    "'Which model for real photos')"
)
_NAMES = {EMBEDDED: "embedded synthetic scenes", HYPERSIM: "Hypersim"}


def scene_source(scene: str) -> str:
    """``embedded_synthetic``, ``hypersim`` or ``folder:<name>`` for one scene name."""
    match = _HYPERSIM_SCENE.fullmatch(scene)
    if match is None:
        return f"{FOLDER_PREFIX}{scene}"
    return EMBEDDED if int(match.group(1)) >= SYNTH_FIRST_VOLUME else HYPERSIM


def trained_on(keys: Iterable[str]) -> dict[str, Any]:
    """``{"frames": N, "sources": {source: {"scenes": S, "frames": F}}}`` of frame keys."""
    scenes: dict[str, set[str]] = {}
    frames: dict[str, int] = {}
    total = 0
    for key in keys:
        scene = str(key).split("/", 1)[0]
        source = scene_source(scene)
        scenes.setdefault(source, set()).add(scene)
        frames[source] = frames.get(source, 0) + 1
        total += 1
    sources = {s: {"scenes": len(scenes[s]), "frames": frames[s]} for s in sorted(frames)}
    return {"frames": total, "sources": sources}


def only_embedded(record: Mapping[str, Any] | None) -> bool:
    """True when ``record`` (a :func:`trained_on` result) names the embedded scenes alone."""
    sources = (record or {}).get("sources") or {}
    return set(sources) == {EMBEDDED}


def photo_warning(record: Mapping[str, Any] | None) -> str | None:
    """:data:`DEMO_WARNING` for a model trained only on the embedded scenes, else None."""
    return DEMO_WARNING if only_embedded(record) else None


def source_name(source: str) -> str:
    """``embedded synthetic scenes``, ``Hypersim``, ``own folder my_rooms``."""
    if source.startswith(FOLDER_PREFIX):
        return f"own folder {source[len(FOLDER_PREFIX) :]}"
    return _NAMES.get(source, source)


def domain_summary(record: Mapping[str, Any] | None) -> str:
    """One phrase: ``embedded synthetic scenes (320 scenes, 1800 frames)``, or not recorded."""
    sources = (record or {}).get("sources") or {}
    if not sources:
        return "not recorded in the checkpoint"
    return "; ".join(
        f"{source_name(s)} ({v['scenes']} scenes, {v['frames']} frames)"
        for s, v in sorted(sources.items())
    )
