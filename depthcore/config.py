"""Strict loading of ``params.yaml`` sections into frozen dataclasses.

Every stage reads the sections of its seam (its own, and e.g. ``tracking``). A typo in
a key or a value of the wrong type must fail loudly, naming the key, instead of silently
running with a default: a silently ignored ``lerning_rate`` costs a whole training run.
Likewise a value out of range (``steps: -5``, a fraction of 1.5): each field's
bounds are declared next to it with :func:`param` and checked whenever the
dataclass is built, from ``params.yaml`` or in code alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from depthcore.errors import DepthcoreError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(DepthcoreError, ValueError):
    """A params file or section that does not match its dataclass."""


class RangeError(ConfigError):
    """A field value outside the bounds declared with :func:`param` (``key`` names the field)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


_BOUNDS = "depthcore.bounds"
_EFFECT = "depthcore.effect"

#: What editing a field changes, declared with ``param(effect=...)``. It decides which
#: keys are DVC params of the stages reading them (dvc.yaml lists every field whose
#: effect is not "none"; tests/pipeline/test_params_deps.py checks it) and which are in a
#: training's checkpoint fingerprint (those of effect "weights";
#: :func:`depthcore.training.launch.run_fingerprint`):
#:
#: - ``"weights"`` (the default): what the stage computes, a trained model's weights included;
#: - ``"outputs"``: the stage's outputs, never a model's weights (validation sizes, the
#:   output folder): a training reruns and resumes from its final checkpoint;
#: - ``"none"``: no output at all (where runs are logged, log and checkpoint intervals),
#:   so no DVC param: editing it reruns nothing.
EFFECTS = ("weights", "outputs", "none")


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Allowed values of a numeric (or tuple of numbers) or string field."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of bounds, or None when it is allowed."""
        if value is None:
            return None
        if self.choices is not None:
            allowed = list(self.choices)
            return None if value in self.choices else f"{value!r} is not one of {allowed}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value!r} is not a finite number"
        for bound, ok, sign in (
            (self.gt, lambda b: value > b, ">"),
            (self.ge, lambda b: value >= b, ">="),
            (self.lt, lambda b: value < b, "<"),
            (self.le, lambda b: value <= b, "<="),
        ):
            if bound is not None and not ok(bound):
                return f"{value!r} out of range: must be {sign} {bound:g}"
        return None


def param(
    default: Any = dataclasses.MISSING,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: Sequence[Any] | None = None,
    effect: str = "weights",
) -> Any:
    """A dataclass field with declared bounds, checked by :func:`frozen` classes on creation,
    and what editing it changes (``effect``, one of :data:`EFFECTS`).

    ``steps: int = param(300, gt=0)``; ``frac: float = param(0.03, ge=0, le=1)``;
    ``model: str = param("tiny", choices=MODEL_CONFIGS)``;
    ``log_every: int = param(10, gt=0, effect="none")``. For a tuple field every
    item is checked.
    """
    if effect not in EFFECTS:
        raise ValueError(f"effect {effect!r} is not one of {list(EFFECTS)}")
    bounds = Bounds(gt, ge, lt, le, None if choices is None else tuple(choices))
    return dataclasses.field(default=default, metadata={_BOUNDS: bounds, _EFFECT: effect})


def field_effects(cls: Any) -> dict[str, str]:
    """Each init field of the config dataclass ``cls`` -> its :data:`EFFECTS` entry."""
    return {f.name: f.metadata.get(_EFFECT, "weights") for f in dataclasses.fields(cls) if f.init}


def fields_with_effect(cls: Any, *effects: str) -> tuple[str, ...]:
    """The init fields of ``cls`` whose effect is one of ``effects`` (declaration order)."""
    return tuple(name for name, effect in field_effects(cls).items() if effect in effects)


def check_bounds(obj: Any) -> None:
    """Raise :class:`RangeError` for the first field of ``obj`` outside its :func:`param` bounds."""
    for f in dataclasses.fields(obj):
        bounds = f.metadata.get(_BOUNDS)
        if bounds is None:
            continue
        value = getattr(obj, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            problem = bounds.problem(item)
            if problem is not None:
                raise RangeError(f.name, problem)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} is not a {_type_name(tp)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _convert(v, a, f"{where}[{i}]")
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        kt, vt = get_args(tp) or (Any, Any)
        return {
            _convert(k, kt, f"{where}.<key>"): _convert(v, vt, f"{where}.{k}")
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported annotation {tp!r}")


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``data``, refusing unknown keys and bad types.

    ``where`` is the dotted path used in error messages (``train.optim.lr``).
    Missing keys take the dataclass defaults; a missing key without default fails.
    """
    label = where or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(f"{label}.{k}" if where else k for k in unknown)
        raise ConfigError(
            f"unknown key {names} in section '{label}' (allowed: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, field in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required key is missing")
    try:
        return cls(**kwargs)
    except RangeError as exc:
        raise ConfigError(f"{label}.{exc.key}: {exc.problem}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: {exc}") from exc


def dotted_leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train.lr": 1e-4, ...}``: every non-mapping value of nested mappings under its
    dotted key (the form of ``dvc exp run -S`` keys, profiles and MLflow params)."""
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            leaves |= dotted_leaves(value, f"{dotted}.")
        else:
            leaves[dotted] = value
    return leaves


def to_dict(cfg: Any) -> dict[str, Any]:
    """The plain-data form of a config dataclass (tuples become lists), for YAML/JSON."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with a key given twice.

    PyYAML keeps the last value silently; DVC's own loader rejects the same file, so
    a duplicated key would mean one value for ``dvc repro`` and another for a stage.
    """


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: SafeLoader's own error names it
            continue
        if first != key_node.start_mark.line + 1:
            raise ConfigError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                f"(first at line {first})"
            )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_yaml(text: str, label: str | Path) -> Any:
    """Parse YAML safely and strictly: a duplicated key or bad syntax is a
    :class:`ConfigError` naming ``label`` (the file) and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from exc
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{label}: not valid YAML: {reason}") from exc


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read a params file, failing with the file's name when it is missing or malformed
    (duplicate keys included)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML: not UTF-8 text ({exc.reason})") from exc
    data = load_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_section(section: str, cls: type[T], path: str | Path = DEFAULT_PARAMS) -> T:
    """Load one top-level section of the params file into ``cls``."""
    data = read_params(path)
    if section not in data:
        raise ConfigError(f"{path}: section '{section}' is missing")
    try:
        return from_dict(cls, data[section], section)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def frozen(cls: type[T]) -> type[T]:
    """Decorator for config sections: a frozen, keyword-only dataclass whose :func:`param`
    bounds are checked before the class's own ``__post_init__`` (if any) runs."""
    own = cls.__dict__.get("__post_init__")

    def __post_init__(self: Any) -> None:  # noqa: N807 - the dataclass hook
        check_bounds(self)
        if own is not None:
            own(self)

    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


@frozen
class TrackingConfig:
    """The ``tracking`` section: where the stages that log (pretrain, train, register) send
    their runs, read by each of them instead of a copy per section.

    Every field is bookkeeping (effect ``"none"``), a DVC param of no stage: where a run is
    logged changes no output, as ``MLFLOW_TRACKING_URI`` (which overrides ``uri``, unseen
    by DVC) never did. To register a round into a new store: ``dvc repro -f register``.
    """

    # how the trainings log: an MLflow run, a metrics CSV beside the model, or nothing
    # (register always needs the MLflow store at ``uri``)
    backend: Literal["mlflow", "csv", "none"] = param("mlflow", effect="none")
    uri: str = param("sqlite:///mlflow.db", effect="none")  # MLFLOW_TRACKING_URI overrides
    # the trainings' runs, the reference runs and each round's ``register`` run
    experiment: str = param("depthart", effect="none")


__all__ = [
    "dotted_leaves",
    "EFFECTS",
    "Bounds",
    "ConfigError",
    "RangeError",
    "check_bounds",
    "param",
    "from_dict",
    "to_dict",
    "read_params",
    "load_yaml",
    "load_section",
    "frozen",
    "field_effects",
    "fields_with_effect",
    "TrackingConfig",
]
