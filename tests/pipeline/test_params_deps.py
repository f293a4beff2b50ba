"""Editing a params key marks exactly the DVC stages that read it, and no other.

"The stages that read a key" is derived from the code (tests/helpers/params_deps.py: the
``load_section`` calls of each stage module and the fields of the dataclasses they load,
less the bookkeeping fields of effect "none"), never from dvc.yaml. Then:

- dvc.yaml's params of each stage are exactly those keys (pure Python, every stage);
- on a copy of the repository with a committed ``dvc.lock``, every key of params.yaml is
  edited at once and one ``dvc status`` names, per stage, the keys (or whole sections) it
  saw change: each key must mark exactly its readers; a few keys are then edited alone.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.dvc_copy import committed_copy, dvc_status
from tests.helpers.params_deps import expected_params, listed_params, load_yaml

DVC = load_yaml("dvc.yaml")
PARAMS = load_yaml("params.yaml")
EXPECTED = expected_params(DVC, PARAMS)


def readers(key: str) -> set[str]:
    """The dvc.yaml stages (base names) whose code reads ``section.key`` as a DVC param."""
    section, name = key.split(".", 1)
    return {stage for stage, secs in EXPECTED.items() if name in secs.get(section, set())}


def every_key() -> list[str]:
    return [f"{section}.{key}" for section, body in PARAMS.items() for key in body or {}]


def edited(value: Any) -> Any:
    """A different value of the same shape (a list keeps its items: ``foreach`` lists)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "_edited"
    if isinstance(value, list):
        return value[::-1] if len(value) > 1 and value[::-1] != value else [*value, "edited"]
    if isinstance(value, dict):
        return {**value, "edited": 1}
    return "edited"


def test_every_stage_lists_exactly_the_keys_its_code_reads() -> None:
    for name, stage in DVC["stages"].items():
        listed = listed_params(stage.get("do", stage), PARAMS)
        wanted = {s: keys for s, keys in EXPECTED[name].items() if keys}
        assert listed == wanted, (
            f"dvc.yaml stage {name}: lists {sorted(listed.items())}, its code reads "
            f"{sorted(wanted.items())}"
        )


def test_the_derivation_sees_every_stage_and_the_bookkeeping() -> None:
    """Not vacuous: each stage reads something, and the bookkeeping keys are read by stages
    (the trainings, register) yet are DVC params of none."""
    assert all(any(secs.values()) for secs in EXPECTED.values()), EXPECTED
    assert readers("train.lr") == {"train"} and readers("scales.num_figures") == {"scales"}
    for key in ("tracking.uri", "tracking.experiment", "train.log_every", "train.ckpt_every"):
        assert readers(key) == set(), key
    assert "tracking" in EXPECTED["train"] and "tracking" in EXPECTED["register"]
    assert readers("tokenizer.lr") == {"tokenizer", "tokenizer_eval"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return committed_copy(tmp_path_factory.mktemp("params") / "repo")


def _status_after(repo: Path, keys: list[str]) -> dict[str, set[str]]:
    """Stage (base name) -> the keys ``dvc status`` reports changed after editing ``keys``."""
    path = repo / "params.yaml"
    original = path.read_text()
    params = copy.deepcopy(PARAMS)
    for key in keys:
        section, name = key.split(".", 1)
        params[section][name] = edited(params[section][name])
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = dvc_status(repo, keep_always_changed=True)
    finally:
        path.write_text(original)
    seen: dict[str, set[str]] = {}
    for stage, changes in status.items():
        reported: set[str] = set()
        for change in changes:
            if change == "always changed":  # list_source (it may report params besides)
                continue
            assert isinstance(change, dict) and set(change) == {"changed deps"}, (stage, change)
            params_changed = change["changed deps"].get("params.yaml", {})
            assert set(change["changed deps"]) == {"params.yaml"}, (stage, change)
            for entry in params_changed:  # a whole section: each of its keys
                section, _, name = entry.partition(".")
                reported |= (
                    {f"{section}.{name}"} if name else {f"{section}.{k}" for k in PARAMS[section]}
                )
        if not reported:
            continue
        base = stage.split("@")[0]
        assert seen.get(base, reported) == reported, f"{stage}: instances disagree"
        seen[base] = reported
    return seen


@pytest.mark.integration
def test_editing_any_key_marks_exactly_the_stages_that_read_it(repo: Path) -> None:
    keys = every_key()
    seen = _status_after(repo, keys)
    for key in keys:
        marked = {stage for stage, reported in seen.items() if key in reported}
        assert marked == readers(key), f"{key}: marks {sorted(marked)}, read by {readers(key)}"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("key", "stages"),
    [
        ("train.lr", {"train"}),
        ("train.log_every", set()),
        ("tracking.uri", set()),
        ("scales.num_figures", {"scales"}),
        ("tokenizer_eval.frames", {"tokenizer_eval"}),
    ],
)
def test_one_edit_alone(repo: Path, key: str, stages: set[str]) -> None:
    assert set(_status_after(repo, [key])) == stages == readers(key)
