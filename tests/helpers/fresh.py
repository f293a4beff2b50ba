"""Code run in a fresh interpreter: what a stage's own process imports and sets."""

from __future__ import annotations

import subprocess
import sys


def fresh_python(code: str, timeout: float = 120.0) -> list[str]:
    """The words ``code`` prints when a new ``python -c`` runs it (a failure raises)."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=timeout
    )
    return out.stdout.split()
