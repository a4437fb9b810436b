#!/usr/bin/env bash
# Every GPU figure of bench/README.md ("GPU figures") in one short run, on the GPU machine:
#
#   bench/gpu.sh                     # -> bench/results/gpu/gpu.json (+ generation-class.json)
#   OUT=/tmp/gpu bench/gpu.sh --parts class,vllm
#   bench/gpu.sh --tiny              # smoke run of the script (tiny model, CPU without a GPU)
#
# What the machine needs (it may have no network: bring wheels, e.g. in .whl/):
#   - this venv with a CUDA build of torch instead of the CPU one, same version:
#       .venv/bin/pip install --no-index --find-links .whl torch==2.13.0   # a +cu12x wheel
#     plus requirements.lock's transformers and peft (already in the venv);
#   - for the vLLM part, vLLM in a venv of its own (it pins its own torch):
#       python -m venv .venv-vllm && .venv-vllm/bin/pip install --no-index --find-links .whl vllm
#     then VLLM_PYTHON=.venv-vllm/bin/python bench/gpu.sh (that venv also needs the project's
#     requirements, or at least transformers, peft and django); without it the part is
#     recorded as skipped;
#   - about 13 GB of disk under var/bench/ (the random 3B, built once, and its merged copy);
#   - 6 to 10 minutes: building the random 3B takes 1 to 2, each part 1 to 3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
export TOKENIZERS_PARALLELISM=false
{ nvidia-smi || echo "no nvidia-smi"; } > "$OUT/nvidia-smi.txt" 2>&1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" | tee "$OUT/torch.txt"
if [[ -n "${VLLM_PYTHON:-}" ]]; then
    # transformers parts with the project's venv, vLLM with its own.
    "$PY" bench/gpu.py --out "$OUT/transformers" --parts class,static-cache,memory "$@"
    "$VLLM_PYTHON" bench/gpu.py --out "$OUT/vllm" --parts vllm "$@"
else
    "$PY" bench/gpu.py --out "$OUT" "$@"
fi
echo "Figures in $OUT"
