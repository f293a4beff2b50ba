"""The strict params loader: unknown keys and wrong types are refused, naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from depthcore.config import ConfigError, from_dict, load_section, to_dict


@dataclasses.dataclass(frozen=True, kw_only=True)
class Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Train:
    steps: int
    objective: Literal["depthart", "var_tf"] = "depthart"
    checkpoint: str | None = None
    optim: Optim = dataclasses.field(default_factory=Optim)


def test_builds_nested_frozen_dataclass() -> None:
    cfg = from_dict(Train, {"steps": 3, "optim": {"lr": 1, "betas": [0.5, 0.6]}}, "train")
    assert cfg.steps == 3 and cfg.optim.lr == 1.0 and cfg.optim.betas == (0.5, 0.6)
    assert isinstance(cfg.optim.lr, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 4  # type: ignore[misc]
    assert to_dict(cfg)["optim"]["betas"] == [0.5, 0.6]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"steps": 1, "stpes": 2}, "train.stpes"),
        ({"steps": 1, "optim": {"learning_rate": 1.0}}, "train.optim.learning_rate"),
        ({"steps": "10"}, "train.steps"),
        ({"steps": True}, "train.steps"),
        ({"steps": 1, "objective": "other"}, "train.objective"),
        ({"steps": 1, "optim": {"betas": [0.9]}}, "train.optim.betas"),
        ({}, "train.steps"),
    ],
)
def test_refuses_bad_sections_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        from_dict(Train, data, "train")


def test_load_section_names_the_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  steps: 2\n  bogus: 1\n")
    with pytest.raises(ConfigError, match=r"params\.yaml.*train\.bogus"):
        load_section("train", Train, params)
    with pytest.raises(ConfigError, match="section 'evaluate' is missing"):
        load_section("evaluate", Train, params)
    with pytest.raises(ConfigError, match="not found"):
        load_section("train", Train, tmp_path / "missing.yaml")


def test_effects_are_declared_per_field_and_checked() -> None:
    """What a field changes (param(effect=...)): dvc.yaml and the checkpoint fingerprint
    are derived from it; a typo in an effect is refused when the class is defined."""
    from depthcore.config import TrackingConfig, field_effects, fields_with_effect, frozen, param

    @frozen
    class Section:
        lr: float = 1e-3
        val_frames: int = param(16, ge=0, effect="outputs")
        log_every: int = param(10, gt=0, effect="none")

    assert field_effects(Section) == {"lr": "weights", "val_frames": "outputs", "log_every": "none"}
    assert fields_with_effect(Section, "weights", "outputs") == ("lr", "val_frames")
    assert fields_with_effect(TrackingConfig, "none") == ("backend", "uri", "experiment")
    with pytest.raises(ValueError, match="effect 'output' is not one of"):
        param(1, effect="output")
    with pytest.raises(ConfigError, match="tracking.backend: 'wandb' is not one of"):
        from_dict(TrackingConfig, {"backend": "wandb"}, "tracking")
