#!/usr/bin/env bash
# One command for a GPU owner (<= 8 min on one H100): d16 step time per objective in fp32
# (TF32) and bf16, tokens/s, peak memory, generation ms/image at batch 1 and 16 with and
# without the KV cache, then the CUDA tests (pytest -m gpu).
#
#   bench/gpu_check.sh            # d16 on cuda
#   bench/gpu_check.sh --quick    # the same on CPU with the tiny model (seconds; CI runs it)
#   bench/gpu_check.sh --batch 8 --grad-checkpointing   # extra flags go to bench/gpu_check.py
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"

if [[ "${1:-}" == "--quick" ]]; then
  shift
  bench=(--model tiny --device cpu --batch 4 --steps 2 --gen-batches 1 4 "$@")
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
else
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: run with --quick for the CPU check")'
  bench=(--model d16 --device cuda --batch 16 --steps 10 --gen-batches 1 16 "$@")
fi

echo "== speed and memory (${bench[*]})"
status=0
"$PY" -m bench.gpu_check "${bench[@]}" || status=$?

echo "== CUDA tests (pytest -m gpu)"
log=$(mktemp)
set +e
"$PY" -m pytest -m gpu -q -p no:cacheprovider -rs tests >"$log" 2>&1
rc=$?
set -e
tail -n 3 "$log"
summary=$(tail -n 1 "$log")
rm -f "$log"
if [[ $rc -ne 0 ]]; then
  echo "CUDA tests: FAIL ($summary)"
  exit 1
elif [[ "$summary" == *passed* ]]; then
  echo "CUDA tests: PASS ($summary)"
else
  echo "CUDA tests: SKIPPED, no CUDA device ($summary)"
fi
exit $status
