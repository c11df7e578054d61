#!/usr/bin/env bash
# The GPU checks, in one run of under 8 minutes on one H100 (see the device
# notes in the issues): GPU-marked tests, each net's patches/s in fp32 and
# bf16 with the share of the bf16 peak, a whole-slide time on the GPU, and a
# short training run at the paper's size. Writes its logs to $OUT (or
# ./gpu-out) for docs/benchmarks.md.
#
#   bash benchmarks/gpu_check.sh            # in the repository root, venv active or python3
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee "$OUT/device.txt"

echo "== GPU-marked tests"
timeout 120 $PY -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -15 | tee "$OUT/tests.txt"

echo "== nets: patches/s, fp32 and bf16"
timeout 90 $PY benchmarks/gpu_bench.py --config razn --json "$OUT/nets-razn.json" | tee "$OUT/nets.md"
timeout 60 $PY benchmarks/gpu_bench.py --config razn-small --batch 256 --json "$OUT/nets-small.json" | tee -a "$OUT/nets.md"

echo "== whole slide on the GPU (synthetic 16k x 16k, demo model, thresholds 0.5 and 0)"
WORK=$(mktemp -d)
timeout 150 $PY -m razn.cli synth "$WORK/slide.tif" --size 16384x16384 --seed 7 --workers 12 >/dev/null
for t in 0.5 0.0; do
  timeout 60 $PY -m razn.cli segment "$WORK/slide.tif" --out "$WORK/t$t" --threshold "$t" \
    --device cuda --batch-size 64 --json | tee -a "$OUT/whole-slide.jsonl"
done

echo "== short training run at the paper's size (razn, 256 px, 30 iterations)"
timeout 120 $PY -m razn.cli train --config razn --slides "$WORK/slide.tif" \
  --labels "$WORK/slide.labels.tif" --out "$WORK/train" --iterations 30 --batch-size 16 \
  --device cuda --log-every 5 --quiet 2>&1 | tail -5 | tee "$OUT/train.txt"
tail -3 "$WORK/train/metrics.jsonl" 2>/dev/null | tee -a "$OUT/train.txt"
