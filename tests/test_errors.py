"""The stage boundary (run_guarded): a signal is reported as a signal, whatever surfaced."""

from __future__ import annotations

import os
import signal

import pytest

from depthcore.errors import Interrupted, run_guarded


def _terminate_self_then(replacement: type[Exception] | None) -> None:
    """Send this process SIGTERM; a library in the way turns the unwind into ``replacement``."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100_000):  # the handler runs at the next bytecode boundary
            pass
    except Interrupted as exc:
        if replacement is None:
            raise
        # what h5py did with it under a real SIGTERM (issue 28's CI run): an HDF5 call failed
        raise replacement("Operation not defined for data type class") from exc
    raise AssertionError("SIGTERM did not interrupt")


@pytest.mark.parametrize("replacement", [None, TypeError, OSError])
def test_sigterm_exits_143_even_when_a_library_replaced_the_exception(
    replacement: type[Exception] | None, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run_guarded("stage x", lambda: _terminate_self_then(replacement))
    err = capsys.readouterr().err
    assert status == 128 + signal.SIGTERM, err
    assert "interrupted (SIGTERM)" in err and "unexpected" not in err


def test_a_failure_without_a_signal_is_still_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> None:
        raise TypeError("a real bug")

    before = signal.getsignal(signal.SIGTERM)
    assert run_guarded("stage x", body) == 1
    assert "unexpected TypeError: a real bug" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # restored after the run
