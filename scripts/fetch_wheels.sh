#!/usr/bin/env bash
# Wheels of the Python packages dialogue-rl needs beyond torch, transformers and sentence-transformers, for an
# offline GPU machine (scripts/bench_gpu.sh installs ./.whl/*.whl when the folder exists). Run here, where a package
# registry is reachable: scripts/fetch_wheels.sh [DIR=.whl]. Python 3.12, x86-64 Linux; about 20 MB; not committed.
# pyarrow (for datasets, TRL's row only) is not fetched (45 MB): the GPU image already has one.
set -euo pipefail
DIR=${1:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$DIR"
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
          --platform manylinux1_x86_64 --platform any)
BINARY=(gymnasium==1.4.0 farama-notifications==0.0.6 vaderSentiment==3.3.2 nltk==3.10.4 alt-profanity-check==1.9.1
        trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 transformers==5.24.0)
SOURCE=(rouge_score==0.1.2)  # published as an sdist only: built into a (pure-Python) wheel here
"$PY" -m pip download -q --no-deps "${PLATFORM[@]}" -d "$DIR" "${BINARY[@]}"
"$PY" -m pip wheel -q --no-deps -w "$DIR" "${SOURCE[@]}"
du -sh "$DIR"
ls "$DIR"
