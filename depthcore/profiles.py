"""Named parameter profiles: partial params files under ``profiles/``, applied to params.yaml.

A profile (``profiles/paper-depthart.yaml``, ``profiles/paper-var-tf.yaml``) holds only the
keys that differ from the embedded default, each with a comment naming the official
config file and key it comes from; ``profiles/default.yaml`` holds the default's value
of every key a profile sets, so applying it undoes any other profile. A long
``dvc exp run -S ...`` list could not carry those comments and silently missed keys;
a file can be reviewed and tested (tests/pipeline/test_profiles.py holds each paper
profile against a table of the official values).

``depthart profile apply NAME`` writes the profile's values into params.yaml, keeping
its comments and layout (ruamel.yaml round trip, installed with the pipeline extra),
atomically; ``dvc exp run`` (or ``dvc repro``) then runs the pipeline with them. A
profile key that params.yaml and the default profile both lack is refused, naming the
profile file and key; the stages' dataclasses check the values when they load.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from depthcore.config import ConfigError, dotted_leaves, read_params
from depthcore.io import write_text_atomic

PROFILES_DIR = "profiles"
DEFAULT_PROFILE = "default"


def list_profiles(root: str | Path) -> list[str]:
    """Names of the profiles in ``<root>/profiles`` (sorted)."""
    return sorted(p.stem for p in (Path(root) / PROFILES_DIR).glob("*.yaml"))


def profile_file(name: str, root: str | Path) -> Path:
    """The file of profile ``name`` (a name in ``<root>/profiles`` or a path to a .yaml)."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
    else:
        path = Path(root) / PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_profiles(root)) or "none"
        raise ConfigError(f"profile {name!r}: {path} not found (profiles: {known})")
    return path


def read_profile(path: str | Path) -> dict[str, Any]:
    """A profile file's mapping ``{section: {key: value}}``; bad structure names the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path}: not a readable YAML profile: {' '.join(str(exc).split())}"
        ) from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: a profile is a mapping of params sections to keys")
    for section, keys in data.items():
        if not isinstance(keys, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping of keys")
    return data


def profile_leaves(profile: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 1e-4, ...}``: every non-mapping value under its dotted key."""
    return dotted_leaves(profile)


def _has(tree: Mapping[str, Any], dotted: str) -> bool:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def check_known(
    profile: Mapping[str, Any], params: Mapping[str, Any], default: Mapping[str, Any], where: Path
) -> None:
    """Every profile key must be in params.yaml or the default profile (a typo fails here)."""
    for dotted in profile_leaves(profile):
        if not _has(params, dotted) and not _has(default, dotted):
            raise ConfigError(
                f"{where}: {dotted} is neither a key of the params file nor of "
                f"{PROFILES_DIR}/{DEFAULT_PROFILE}.yaml"
            )


def merge_profile(params: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with every profile leaf set (plain dicts; for checks and tests)."""
    merged = copy.deepcopy(dict(params))
    for dotted, value in profile_leaves(profile).items():
        *parents, last = dotted.split(".")
        node = merged
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = copy.deepcopy(value)
    return merged


def apply_profile(name: str, params_path: str | Path = "params.yaml") -> dict[str, tuple[Any, Any]]:
    """Write profile ``name``'s values into ``params_path``; ``{key: (old, new)}`` that changed.

    Profiles are looked up in ``profiles/`` beside the params file. Comments, key order
    and flow style of params.yaml are kept; the file is replaced atomically.
    """
    params_path = Path(params_path)
    root = params_path.resolve().parent
    path = profile_file(name, root)
    profile = read_profile(path)
    params = read_params(params_path)
    default_path = root / PROFILES_DIR / f"{DEFAULT_PROFILE}.yaml"
    default = read_profile(default_path) if default_path.is_file() else {}
    check_known(profile, params, default, path)
    try:
        from ruamel.yaml import YAML
        from ruamel.yaml.comments import CommentedMap, CommentedSeq
    except ImportError as exc:
        raise ConfigError(
            f"applying a profile needs ruamel.yaml ({exc}); install the pipeline extra: "
            "pip install -e '.[pipeline]'"
        ) from None
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 100  # the line length params.yaml is written to (long flow lists wrap)
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    doc = rt.load(params_path.read_text(encoding="utf-8"))
    old_leaves = profile_leaves(params)
    changed: dict[str, tuple[Any, Any]] = {}
    for dotted, value in profile_leaves(profile).items():
        *parents, last = dotted.split(".")
        node = doc
        for part in parents:
            if part not in node:
                node[part] = CommentedMap()
            node = node[part]
        if isinstance(value, list):
            seq = CommentedSeq(value)
            seq.fa.set_flow_style()
            value_rt: Any = seq
        else:
            value_rt = value
        node[last] = value_rt
        if old_leaves.get(dotted, None) != value or dotted not in old_leaves:
            changed[dotted] = (old_leaves.get(dotted), value)
    out = io.StringIO()
    rt.dump(doc, out)
    write_text_atomic(params_path, out.getvalue())
    return changed


__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES_DIR",
    "apply_profile",
    "check_known",
    "list_profiles",
    "merge_profile",
    "profile_file",
    "profile_leaves",
    "read_profile",
]
