"""Which dataclass reads which params.yaml section, and a check of the whole file at once.

Each stage loads only the sections it reads, so a typo in another section surfaces
only when that stage runs, possibly an hour into ``dvc repro``. :func:`check_params`
loads every section up front. Classes are named by import path and imported on
use, so this module pulls in no stage's dependencies (torch, h5py) by itself.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from depthcore.config import ConfigError, load_section, read_params

#: params.yaml section -> "module:Class" of the frozen dataclass that reads it.
SECTIONS: dict[str, str] = {
    "synth": "depthcore.synth.hypersim:SynthConfig",
    "benchmarks": "depthcore.synth.benchmarks:BenchmarksConfig",
    "download": "depthcore.data.hypersim.download:DownloadConfig",
    "preprocess": "depthcore.data.hypersim.preprocess:PreprocessConfig",
    "validate": "depthcore.data.hypersim.validate:ValidateConfig",
    "tokenizer": "depthcore.training.tokenizer:TokenizerConfig",
    "tokenizer_eval": "depthcore.evaluation.ceiling:TokenizerEvalConfig",
    "features": "depthcore.training.feature_cache:FeaturesConfig",
    "pretrain": "depthcore.training.pretrain:PretrainConfig",
    "train": "depthcore.training.trainer:TrainConfig",
    "scales": "depthcore.evaluation.scales:ScalesConfig",
    "tracking": "depthcore.config:TrackingConfig",
    "evaluate": "depthcore.evaluation.run:EvaluateConfig",
    "register": "depthcore.tracking.registry:RegisterConfig",
    "report": "depthcore.evaluation.report:ReportConfig",
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
