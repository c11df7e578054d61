#!/usr/bin/env bash
# Every GPU check in one prepared run that ends within 8 minutes on one
# H100/H200 (a lent device gives a session 15 minutes in all, so this leaves
# room for one rerun). Everything it measures goes under $OUT (or ./gpu-out):
#   device.txt          torch version and device name
#   tests.txt           the GPU-marked tests
#   nets.md, nets-*.json  each net's patches/s in fp32 and bf16, share of the bf16 peak
#   whole-slide.jsonl   `razn segment` on a 12k x 12k synthetic slide, thresholds 0.5 and 0
#   a1-<variant>/       Algorithm 1 at the paper's size (razn: ResNet18 nets, 256 px
#                       patches): the paper's reward, the bounded (symmetric) reward and
#                       no routing, each for as many steps as its time slice allows;
#                       metrics.jsonl (zoom fraction and both losses over training)
#                       and evaluate.json (mIoU and zoom on a held-out slide)
#   a1-summary.md       one table of those
#   timing.txt          how long each step took, against the 480 s budget
#
# Each step gets what is left of the budget, capped at its own share, so a
# slow step shortens the next ones instead of overrunning the lease.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh    # repository root, venv active or $PYTHON
#   DEVICE=cpu BUDGET=600 SIZE=2048 A1_CONFIG=razn-small A1_STEPS=4 A1_BATCH=4 \
#     A1_LOG_EVERY=2 A1_CHECKPOINT_EVERY=2 bash benchmarks/gpu_check.sh
#                                    # a dry run on a CPU: every step, tiny
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-480}   # seconds for the whole script
SIZE=${SIZE:-12288}     # training/whole-slide slide side (level-0 px; 3 x 3 mm)
A1_STEPS=${A1_STEPS:-400}
A1_CONFIG=${A1_CONFIG:-razn} # the paper's size; razn-small for a CPU dry run
A1_BATCH=${A1_BATCH:-16}
A1_LOG_EVERY=${A1_LOG_EVERY:-10}
A1_CHECKPOINT_EVERY=${A1_CHECKPOINT_EVERY:-25}
RESERVE=${RESERVE:-120} # seconds kept for the whole-slide and net timings
export PYTHONUNBUFFERED=1
START=$(date +%s)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# step NAME CAP COMMAND...: run COMMAND under min(CAP, time left - 5 s), log its time.
step() {
  local name=$1 cap=$2; shift 2
  local t0 limit rc
  limit=$(( $(left) - 5 ))
  (( limit > cap )) && limit=$cap
  if (( limit < 5 )); then echo "$name: skipped, budget spent" | tee -a "$OUT/timing.txt"; return 0; fi
  t0=$(date +%s)
  # SIGINT first (razn stops cleanly, keeping its last checkpoint), KILL 10 s later.
  timeout -s INT -k 10 "$limit" "$@"
  rc=$?
  echo "$name: rc $rc, $(( $(date +%s) - t0 )) s (cap $limit s; $(( $(date +%s) - START )) s of $BUDGET)" \
    | tee -a "$OUT/timing.txt"
}


: > "$OUT/timing.txt"
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')" \
  | tee "$OUT/device.txt"

echo "== GPU-marked tests"
step tests 60 bash -c "$PY -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -15 > '$OUT/tests.txt'"
cat "$OUT/tests.txt"

echo "== slides: one to train on and segment, one held out"
# razn synth's default invasive pattern (spill: the stroma does not trace the
# label), not the CPU runs' desmoplastic one: these figures stand on their own.
step synth-train 120 $PY -m razn.cli synth "$WORK/train.tif" --size "${SIZE}x${SIZE}" --seed 7 --workers 12 --lesion-fraction 0.25
step synth-test 45 $PY -m razn.cli synth "$WORK/test.tif" --size "$(( SIZE / 2 ))x$(( SIZE / 2 ))" --seed 8 --workers 12 --lesion-fraction 0.25

echo "== Algorithm 1 at the paper's size: paper reward, symmetric reward, no routing"
# The time left, less RESERVE for the whole-slide and net timings after it,
# is split evenly; each run stops at its slice (a checkpoint
# every 25 steps), then its last checkpoint is scored on the held-out slide.
variants=(paper symmetric no-routing)
for i in "${!variants[@]}"; do
  v=${variants[$i]}
  slice=$(( ($(left) - RESERVE) / (${#variants[@]} - i) ))
  case $v in
    paper) extra=() ;;
    symmetric) extra=(--reward-scale symmetric) ;;
    no-routing) extra=(--warmup "$A1_STEPS" --warmup-policy) ;;
  esac
  mkdir -p "$OUT/a1-$v"
  step "a1-$v-train" $(( slice * 3 / 4 )) $PY -m razn.cli train --config "$A1_CONFIG" --slides "$WORK/train.tif" \
    --labels "$WORK/train.labels.tif" --out "$WORK/a1-$v" --iterations "$A1_STEPS" --batch-size "$A1_BATCH" \
    --device "$DEVICE" --log-every "$A1_LOG_EVERY" --checkpoint-every "$A1_CHECKPOINT_EVERY" \
    --quiet "${extra[@]}"
  cp "$WORK/a1-$v/metrics.jsonl" "$OUT/a1-$v/" 2>/dev/null
  model="$WORK/a1-$v/model.safetensors"
  [ -f "$model" ] || model="$WORK/a1-$v/checkpoint.safetensors"
  if [ -f "$model" ]; then
    step "a1-$v-evaluate" $(( slice / 4 )) bash -c "$PY -m razn.cli evaluate --model '$model' \
      --slide '$WORK/test.tif' --labels '$WORK/test.labels.tif' --threshold 0.5 --timing-fields 0 \
      --json --quiet > '$OUT/a1-$v/evaluate.json'"
  fi
done

echo "== whole slide on the GPU (demo model, thresholds 0.5 and 0)"
for t in 0.5 0.0; do
  step "segment-$t" 30 bash -c "$PY -m razn.cli segment '$WORK/train.tif' --out '$WORK/t$t' --threshold $t \
    --device $DEVICE --batch-size 64 --json >> '$OUT/whole-slide.jsonl'"
done
cat "$OUT/whole-slide.jsonl" 2>/dev/null

echo "== nets: patches/s, fp32 and bf16"
step nets-razn 50 bash -c "$PY benchmarks/gpu_bench.py --config razn --json '$OUT/nets-razn.json' > '$OUT/nets.md'"
step nets-small 30 bash -c "$PY benchmarks/gpu_bench.py --config razn-small --batch 256 --json '$OUT/nets-small.json' >> '$OUT/nets.md'"
cat "$OUT/nets.md"

$PY - "$OUT" <<'EOF' | tee "$OUT/a1-summary.md"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| variant | steps | zoom in training (last 50) | held-out mIoU | held-out zoom |")
print("|---|---|---|---|---|")
for v in ("paper", "symmetric", "no-routing"):
    rows = [json.loads(l) for l in (out / f"a1-{v}" / "metrics.jsonl").read_text().splitlines()] \
        if (out / f"a1-{v}" / "metrics.jsonl").exists() else []
    tail = [r.get("zoom_action_1") for r in rows if r.get("iteration", 0) > (rows[-1]["iteration"] - 50)] if rows else []
    tail = [z for z in tail if z is not None]
    ev = out / f"a1-{v}" / "evaluate.json"
    e = json.loads(ev.read_text()) if ev.exists() and ev.stat().st_size else {}
    res = (e.get("results") or [e])[0] if e else {}
    z = f"{sum(tail) / len(tail):.2f}" if tail else "-"
    m = f"{res['miou']:.3f}" if "miou" in res else "-"
    hz = f"{res['zoom_fraction']:.2f}" if "zoom_fraction" in res else "-"
    print(f"| {v} | {rows[-1]['iteration'] if rows else 0} | {z} | {m} | {hz} |")
EOF
echo "total: $(( $(date +%s) - START )) s of $BUDGET" | tee -a "$OUT/timing.txt"
