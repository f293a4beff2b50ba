"""Which dataclass reads which params.yaml section, and a check of the whole file at once.

Each stage loads only its own section, so a typo in another section surfaces
only when that stage runs, possibly an hour into ``dvc repro``. :func:`check_params`
loads every section up front. Classes are named by import path and imported on
use, so this module pulls in no stage's dependencies (torch, h5py) by itself.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from depthcore.config import ConfigError, frozen, load_section, read_params


@frozen
class BenchmarksConfig:
    """The ``benchmarks`` section: the embedded zero-shot benchmark sets to generate."""

    out_dir: str = "data/benchmarks"  # writes <out_dir>/<name>/ in that dataset's real format
    names: tuple[str, ...] = ("nyu", "ibims", "tum", "eth3d")
    images: int = 8  # frames per benchmark
    seed: int = 1000  # distinct from the training scenes' seeds: zero-shot
    height: int = 96
    width: int = 128

    def __post_init__(self) -> None:
        if self.images < 1 or self.height < 16 or self.width < 16:
            raise ValueError(f"images >= 1 and a size >= 16x16 needed, got {self}")


#: params.yaml section -> "module:Class" of the frozen dataclass that reads it.
SECTIONS: dict[str, str] = {
    "synth": "depthcore.synth.hypersim:SynthConfig",
    "benchmarks": "depthcore.params:BenchmarksConfig",
    "download": "depthcore.data.download:DownloadConfig",
    "preprocess": "depthcore.data.preprocess:PreprocessConfig",
    "validate": "depthcore.data.validate:ValidateConfig",
    "tokenizer": "depthcore.tokenizer:TokenizerConfig",
    "features": "depthcore.features:FeaturesConfig",
    "train": "depthcore.training.trainer:TrainConfig",
    "evaluate": "depthcore.evaluation:EvaluateConfig",
    "register": "depthcore.tracking.registry:RegisterConfig",
}


def section_class(section: str) -> type:
    """The dataclass reading ``section`` (imported now); unknown sections raise ConfigError."""
    try:
        module_name, cls_name = SECTIONS[section].split(":")
    except KeyError:
        raise ConfigError(
            f"unknown params section '{section}'; known: {sorted(SECTIONS)}"
        ) from None
    return getattr(importlib.import_module(module_name), cls_name)


def check_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load every known section of ``path``; the first bad key fails naming file and key.

    Sections this library does not own (e.g. ``schedule``, read by the Prefect
    deployment) are left to their readers.
    """
    data = read_params(path)
    return {
        name: load_section(name, section_class(name), path) for name in SECTIONS if name in data
    }
