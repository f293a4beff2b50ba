"""``depthart predict`` says in one line when a model trained only on the embedded synthetic
scenes meets photos, and says nothing for other models or checkpoints that predate the record."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from depthcore.cli import main
from depthcore.data.domain import DEMO_WARNING, EMBEDDED, scene_source, trained_on
from depthcore.models.checkpoint import load_model, save_model
from depthcore.synth.hypersim import scene_name
from tests.helpers.checkpoints import random_rgb

EMBEDDED_KEYS = ["ai_100_001/cam_00/0000", "ai_100_002/cam_00/0001"]
HYPERSIM_KEYS = ["ai_001_001/cam_00/0000", "ai_100_001/cam_00/0000"]


def _with_record(src: Path, dst: Path, keys: list[str]) -> Path:
    loaded = load_model(src)
    save_model(
        dst, loaded.vae, loaded.var, loaded.config, {**loaded.meta, "trained_on": trained_on(keys)}
    )
    return dst


@pytest.mark.parametrize(
    ("keys", "noted"), [(EMBEDDED_KEYS, True), (HYPERSIM_KEYS, False), (None, False)]
)
def test_the_domain_note(tmp_path, tiny_checkpoint, capsys, keys, noted) -> None:
    model = (
        tiny_checkpoint
        if keys is None
        else _with_record(tiny_checkpoint, tmp_path / "m.safetensors", keys)
    )
    Image.fromarray(random_rgb(16, 16)).save(tmp_path / "photo.png")
    code = main(["predict", "-q", "--device", "cpu", str(tmp_path / "photo.png"), "-o",
                 str(tmp_path / "out"), "--model", str(model), "--outputs", "npy"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and err.count(DEMO_WARNING) == (1 if noted else 0), err


def test_trained_on_counts_scenes_and_frames_per_source() -> None:
    keys = [*EMBEDDED_KEYS, "ai_001_001/cam_00/0", "ai_001_001/cam_00/1", "my_rooms/kitchen/3"]
    assert trained_on(keys) == {
        "frames": 5,
        "sources": {
            "embedded_synthetic": {"scenes": 2, "frames": 2},
            "folder:my_rooms": {"scenes": 1, "frames": 1},
            "hypersim": {"scenes": 1, "frames": 2},
        },
    }


def test_the_synth_stage_names_its_scenes_as_embedded() -> None:
    assert {scene_source(scene_name(i)) for i in range(0, 2000, 7)} == {EMBEDDED}
