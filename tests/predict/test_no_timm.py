"""Predicting from a checkpoint never imports timm (nor torchvision): ~1.6 s of start-up.

A fresh interpreter runs ``depthart predict`` on one photo with a DepthVAR checkpoint
(pixel path: ResNet-10-T) and with a regression baseline (ResNet-10-T encoder), then
reports which of the two packages got imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from depthcore.models.regression import create_regression, save_regression
from tests.helpers.checkpoints import random_rgb

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from depthcore.cli import main
codes = [
    main(["predict", "-q", "--device", "cpu", sys.argv[1], "-o", out, "--model", model])
    for model, out in zip(sys.argv[2::2], sys.argv[3::2])
]
imported = [m for m in ("timm", "torchvision") if m in sys.modules]
print(json.dumps({"codes": codes, "imported": imported}))
"""


def test_predicting_from_checkpoints_imports_neither_timm_nor_torchvision(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(random_rgb(24, 32)).save(photo)
    torch.manual_seed(3)
    baseline = tmp_path / "regression.safetensors"
    save_regression(
        baseline, create_regression("tiny"), {"space": "sqrt_disparity", "image_size": 64}
    )
    outs = [tmp_path / "var_out", tmp_path / "regression_out"]
    proc = subprocess.run(
        [
            sys.executable, "-c", SCRIPT, str(photo),
            str(tiny_checkpoint), str(outs[0]), str(baseline), str(outs[1]),
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0, 0], "imported": []}, proc.stderr
    for out in outs:
        assert np.isfinite(np.load(out / "photo_depth.npy")).all()
