"""``bench/gpu_check.sh --quick`` runs end to end on CPU and prints every figure it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_quick_prints_all_figures() -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--quick"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for precision in ("fp32", "bf16"):
        for objective in ("depthart", "var_tf"):
            line = rf"train {precision}\s+{objective}\s+batch\s+4:\s+[\d.]+ ms/step\s+\d+ tokens/s"
            assert re.search(line, out), (precision, objective, out)
    # auto resolves to fp32 or bf16 here, both measured: its rows are not repeated
    assert re.search(r"auto = (fp32|bf16) on this device: its figures are the", out), out
    for precision in ("fp32", "bf16"):
        for batch in (1, 4):  # --quick generates at batch 1 and 4
            line = rf"generate {precision} batch\s+{batch}: .* speed-up [\d.]+x"
            assert re.search(line, out), (precision, batch, out)
    assert re.search(r"CUDA tests: (PASS|SKIPPED)", out), out
