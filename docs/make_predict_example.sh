#!/usr/bin/env bash
# Regenerate docs/predict_example.png: render a small synthetic room with depthcore.synth
# (docs/predict_example_input.png), run `depthart predict --scales` on it and keep the
# per-scale strip (input | cumulative prediction after each scale, the last = final depth).
#
#   docs/make_predict_example.sh                 # the champion of ./mlflow.db (after `dvc repro`)
#   docs/make_predict_example.sh path/or/uri     # any checkpoint, model folder or MLflow URI
set -euo pipefail
cd "$(dirname "$0")/.."
model_args=()
if [[ $# -ge 1 ]]; then model_args=(--model "$1"); fi

python - <<'PY'
import numpy as np
from PIL import Image

from depthcore.data.hypersim.reader import tone_map
from depthcore.synth.render import render
from depthcore.synth.scenes import make_room, sample_camera

rng = np.random.default_rng(7)
scene = make_room(rng, "hypersim")
frame = render(scene, sample_camera(rng, scene), 96, 128, seed=7)
valid_HW = np.isfinite(frame.distance_HW)
Image.fromarray(tone_map(frame.hdr_HW3, valid_HW)).save("docs/predict_example_input.png")
PY

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
depthart predict docs/predict_example_input.png -o "$out" --scales --outputs color --seed 0 \
    --device cpu -q "${model_args[@]}"
cp "$out/predict_example_input_scales.png" docs/predict_example.png
echo "wrote docs/predict_example.png"
