#!/usr/bin/env bash
# Every GPU check of dialogue-rl in one go (under 5 minutes on one H200): the gpu-marked tests and
# `dialogue-rl bench ppo` at 256 replies x 64 tokens on random-weight stand-ins of SmolLM2-135M and
# all-MiniLM-L6-v2. Needs the repository, python3 with torch, transformers and sentence-transformers, and no network:
# the other dependencies travel as wheels in ./.whl (made here by scripts/fetch_wheels.sh) and are installed under
# /tmp first; the stand-ins are built from scripts/standins/ (configs and tokenizers).
#
#   scripts/bench_gpu.sh RESULTS_DIR
#
# Writes to RESULTS_DIR (at most 8 files): environment.txt, gpu_tests.log, bench_ppo.md, bench_ppo.json, and
# bench_ppo_1024.md/.json (a larger batch) when there is time. Exit status: non-zero if the tests or the main bench
# failed (every stage runs anyway).
# CPU dry run of the same steps at tiny size, with a Python that has every dependency already:
#   BENCH_DEVICE=cpu BENCH_SIZE=tiny BENCH_WHEELS=0 PYTHON=.venv/bin/python scripts/bench_gpu.sh DIR
set -uo pipefail
OUT=${1:?usage: scripts/bench_gpu.sh RESULTS_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${BENCH_DEVICE:-cuda}
SIZE=${BENCH_SIZE:-full}
WORK=${BENCH_WORK:-/tmp/dialogue-rl-bench}
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
status=0

if [ "${BENCH_WHEELS:-1}" = 1 ] && compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl \
    || { echo "installing .whl failed"; status=1; }
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
  date -u; nvidia-smi 2>/dev/null || echo "no nvidia-smi"
  "$PY" - <<'PY'
import importlib, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
for name in ("transformers", "sentence_transformers", "trl", "datasets", "accelerate", "gymnasium", "pyarrow",
             "sklearn", "vaderSentiment", "rouge_score", "profanity_check"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"))
    except Exception as err:
        print(name, "MISSING:", type(err).__name__, err)
PY
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

"$PY" scripts/standins.py build "$WORK/models" || { echo "building the stand-ins failed"; exit 1; }
export DIALOGUE_RL_MINILM="$WORK/models/all-minilm-l6-v2"
MODEL=${BENCH_MODEL:-$WORK/models/smollm2-135m}

# 1. the gpu-marked tests (on a CPU dry run: the CPU twins of the same tests)
if [ "$DEVICE" = cuda ]; then MARK=(-m gpu); else MARK=(-k "not cuda"); fi
timeout 150 "$PY" -m pytest -q -p no:cacheprovider -rs --basetemp="$WORK/pytest" "${MARK[@]}" \
  tests/test_fast_decode.py tests/test_ppo_speed.py 2>&1 | tee "$OUT/gpu_tests.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

# 2. bench ppo: ours (static decode + CUDA graph, then the dynamic cache) vs HF generate vs TRL GRPOTrainer
if [ "$SIZE" = tiny ]; then  # a slow CPU: minutes
  ARGS=(--num-envs 4 --samples 2 --max-new-tokens 4 --iterations 1 --warmup 1); BENCH_TIMEOUT=${BENCH_TIMEOUT:-1200}
else
  ARGS=(--num-envs 256 --samples 8 --max-new-tokens 64 --iterations 3 --warmup 1); BENCH_TIMEOUT=${BENCH_TIMEOUT:-240}
fi
timeout "$BENCH_TIMEOUT" "$PY" -m agents.cli bench ppo --model "$MODEL" --device "$DEVICE" --reward "${BENCH_REWARD:-default}" \
  --decode auto,dynamic "${ARGS[@]}" --out "$OUT/bench_ppo.json" 2>&1 | tee "$OUT/bench_ppo.md"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

# 3. if time is left (full size only): our iteration alone at batch 1024
if [ "$SIZE" != tiny ] && [ "$SECONDS" -lt 200 ]; then
  timeout $((280 - SECONDS)) "$PY" -m agents.cli bench ppo --model "$MODEL" --device "$DEVICE" \
    --reward "${BENCH_REWARD:-default}" --num-envs 1024 --samples 8 --max-new-tokens 64 --iterations 2 --warmup 1 \
    --minibatches 4 --no-trl --out "$OUT/bench_ppo_1024.json" 2>&1 | tee "$OUT/bench_ppo_1024.md"
fi
echo "bench_gpu.sh: ${SECONDS} s, status $status, results in $OUT"
exit $status
