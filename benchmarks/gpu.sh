#!/usr/bin/env bash
# Issue 15, item 5: the GPU figures of benchmarks/RESULTS.md in one go (about 5 minutes on one
# H100/H200, so it fits twice in a 15-minute device lease).
#
#   OUT=/some/folder bash benchmarks/gpu.sh      # from the repository root, on the GPU machine
#
# Needs a Python (PY, default python) with this project's dependencies and a CUDA build of
# JAX. Writes to $OUT (default benchmarks/gpu-out):
#   device.txt        the card (nvidia-smi) and JAX's device kind
#   throughput.md     `python -m benchmarks --compare=dtype` on ml-1m-sized data: xDeepFM
#                     training examples/s and BERT4Rec seconds per epoch, float32 and bfloat16
#                     side by side, with peak fractions (datasheet peaks)
#   accuracy.md       the default xDeepFM run (`python train.py`) in float32 and in bfloat16:
#                     test AUC / LogLoss, best epoch and training seconds of each, and SASRec
#                     likewise when configs/sasrec_ml100k.py exists
#   log.txt           everything printed
# Paste throughput.md and accuracy.md into RESULTS.md's GPU section with the date and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${OUT:-benchmarks/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec > >(tee -a "$OUT/log.txt") 2>&1

echo "== $(date -u) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$PY" -c "import jax; print(jax.__version__, jax.default_backend(), jax.devices())"
} | tee "$OUT/device.txt"

echo "== throughput, float32 vs bfloat16, ml-1m-sized synthetic log"
"$PY" -m benchmarks --compare=dtype --cases=xdeepfm-train,bert4rec-train \
  --data=ml-1m-synthetic --json="$OUT/throughput.json" | tee "$OUT/throughput.md"

echo "== accuracy, float32 vs bfloat16"
runs=(xdeepfm:configs/xdeepfm_ml100k.py)
if [ -f configs/sasrec_ml100k.py ]; then runs+=(sasrec:configs/sasrec_ml100k.py); fi
for run in "${runs[@]}"; do
  name=${run%%:*}
  config=${run#*:}
  for dtype in float32 bfloat16; do
    rm -rf "$OUT/run-$name-$dtype"
    "$PY" train.py --config="$config" --workdir="$OUT/run-$name-$dtype" \
      --config.model.dtype=$dtype --config.log.progress_bar=False --config.log.tensorboard=False
  done
done
"$PY" - "$OUT" "${runs[@]%%:*}" <<'EOF' | tee "$OUT/accuracy.md"
import json
import sys
from pathlib import Path

out, names = Path(sys.argv[1]), sys.argv[2:]
print("| model | dtype | test metrics | best epoch | epochs | train seconds |")
print("| --- | --- | --- | --- | --- | --- |")
for name in names:
    for dtype in ("float32", "bfloat16"):
        r = json.loads((out / f"run-{name}-{dtype}" / "results.json").read_text())
        keys = ("auc", "logloss") if name == "xdeepfm" else ("ndcg@10", "hr@10")
        metrics = ", ".join(f"{k} {r['test'][k]:.4f}" for k in keys)
        print(
            f"| {name} | {dtype} | {metrics} | {r['best_epoch']} | {r['epochs']} "
            f"| {r['train_seconds']:.1f} |"
        )
EOF
# Checkpoints stay behind on the machine: only the small files come back.
rm -rf "$OUT"/run-*
echo "== done $(date -u)"
