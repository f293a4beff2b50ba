"""Run parameters from the Prefect UI, checked against the params dataclasses before anything runs.

A retrain run may override params (``{"train.steps": 50}``) and pick the objectives to
train. They reach DVC as ``dvc exp run -S key=value``, so a mistyped key would only
surface when the stage reading it starts, possibly an hour in, or never (DVC sets any
key you give it). Here every key is applied to a copy of params.yaml and the sections
it touches are loaded by their strict dataclasses: an unknown key or a wrong type fails
the flow in a second, naming the key, with nothing executed.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from depthcore.config import ConfigError, from_dict, read_params
from stages.params import SECTIONS

#: Sections read outside depthcore (the deployment's own) -> "module:Class".
EXTRA_SECTIONS: dict[str, str] = {"schedule": "pipelines.flows:ScheduleConfig"}


def dvc_env() -> dict[str, str]:
    """The environment to run ``dvc`` in: this interpreter's directory first on PATH.

    Stage commands say ``python -m stages...``; a run started as ``.venv/bin/python ...``
    without the environment activated must still run them with the project's interpreter
    (DVC's queue workers included), not whichever ``python`` PATH finds first.
    """
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    return {**os.environ, "PATH": path}


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` in ``data``; intermediate levels must already be mappings."""
    *parents, leaf = key.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: i + 1])
            raise ConfigError(f"override {key}: {where} is a value, not a section")
        node = child
    node[leaf] = value


def _load(section: str, data: Any) -> None:
    """Load ``data`` as ``section`` with its dataclass (imported by name on use, as
    :mod:`stages.params` does, so this module stays light)."""
    known = {**SECTIONS, **EXTRA_SECTIONS}
    if section not in known:
        raise ConfigError(f"override: unknown params section '{section}' (known: {sorted(known)})")
    module_name, cls_name = known[section].split(":")
    from_dict(getattr(importlib.import_module(module_name), cls_name), data, section)


def resolve_overrides(
    params_path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    objectives: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The checked overrides (``objectives`` becomes ``register.objectives``).

    Raises :class:`ConfigError` naming the params file and the key on an unknown key,
    a wrong type or an empty objective list.
    """
    merged: dict[str, Any] = dict(overrides or {})
    if objectives is not None:
        if not objectives:
            raise ConfigError("objectives: name at least one (e.g. depthart, var_tf)")
        merged["register.objectives"] = list(objectives)
    if not merged:
        return {}
    data = copy.deepcopy(read_params(params_path))
    for key in merged:
        if not isinstance(key, str) or "." not in key or "" in key.split("."):
            raise ConfigError(f"override {key!r}: expected 'section.key' (e.g. train.steps)")
    for key, value in merged.items():
        _set(data, key, value)
    for section in sorted({key.split(".")[0] for key in merged}):
        try:
            _load(section, data.get(section))
        except ConfigError as exc:
            raise ConfigError(f"{params_path}: override rejected: {exc}") from exc
    return merged


def set_param_args(overrides: Mapping[str, Any], params_file: str) -> list[str]:
    """``dvc exp run`` arguments for ``overrides``: ``-S <file>:key=<JSON value>`` each.

    JSON is YAML, so DVC reads the value back with its type (50, true, [a, b], "text").
    """
    args: list[str] = []
    for key, value in overrides.items():
        args += ["-S", f"{params_file}:{key}={json.dumps(value)}"]
    return args
