"""Bad params and unexpected failures at a stage's entry point: one ``error:`` line naming
the key, exit status 1, a traceback only with ``--debug`` / ``DEPTHCORE_DEBUG=1``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from depthcore.config import ConfigError, from_dict
from depthcore.data.hypersim.preprocess import PreprocessConfig
from depthcore.errors import DEBUG_ENV
from depthcore.models import MODEL_CONFIGS
from depthcore.training.train_config import TrainConfig
from stages.common import run_stage
from stages.train import main as train_main


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No debug mode unless a test asks (``--debug`` sets it for the process, undone here);
    the root log handlers run_stage installs on the captured stderr are removed after."""
    monkeypatch.setenv(DEBUG_ENV, "0")
    handlers = logging.root.handlers[:]
    yield
    logging.root.handlers[:] = handlers


def _train_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, *extra: str
) -> tuple[int, str]:
    params = tmp_path / "params.yaml"
    params.write_text(f"train:\n{section}")
    with pytest.raises(SystemExit) as info:
        train_main(["--params", str(params), "--objective", "depthart", *extra])
    return int(info.value.code), capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  steps: -5\n", "train.steps: -5 out of range: must be > 0"),
        ("  model: huge\n", f"train.model: 'huge' is not one of {list(MODEL_CONFIGS)}"),
        ("  lr: 0\n", "train.lr: 0.0 out of range: must be > 0"),
        ("  betas: [0.9, 1.5]\n", "train.betas: 1.5 out of range: must be < 1"),
        ("  lr: .nan\n", "train.lr: nan is not a finite number"),
    ],
)
def test_bad_train_params_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, message: str
) -> None:
    code, err = _train_stage(tmp_path, capsys, section)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert "params.yaml" in lines[0]


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"filters": {"max_invalid_frac": 1.5}}, "preprocess.filters.max_invalid_frac"),
        ({"percentiles": [-1.0, 98.0]}, "preprocess.percentiles"),
        ({"resolution": [0, 64]}, "preprocess.resolution"),
        ({"shard_size": 0}, "preprocess.shard_size"),
    ],
)
def test_ranges_name_the_nested_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ": .* out of range"):
        from_dict(PreprocessConfig, data, "preprocess")


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"steps: -5 out of range"):
        TrainConfig(steps=-5)


def _boom() -> None:
    {}["missing"]  # a bug: a KeyError nobody turned into a message


def test_unexpected_error_is_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as info:
        run_stage("demo", _boom)
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert err.strip() == (
        "error: stage demo failed: unexpected KeyError: 'missing' "
        f"(rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
    )
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(SystemExit):
        run_stage("demo", _boom)
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("for the traceback)")


def test_debug_flag_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = _train_stage(tmp_path, capsys, "  steps: -5\n", "--debug")
    assert code == 1 and "Traceback" in err and "train.steps" in err
