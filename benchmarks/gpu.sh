#!/usr/bin/env bash
# GPU benchmark: MFU of a >= 100M-parameter in-context DiT at 256 image tokens, bf16, eager and compiled per block,
# against diffusers' DiT of the same size. For an H100/H200 machine with no network; about 2-4 minutes.
#
#   bash benchmarks/gpu.sh [OUT_DIR]        (from the repository root; results in OUT_DIR/gpu.json, default .)
#
# Packages the machine lacks travel as wheels in .whl/ (ignored by git), made on a machine with network:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata zipp
# torch, accelerate, huggingface_hub, safetensors, numpy, pyyaml, tqdm and torchdiffeq are expected on the machine.
# Without a CUDA device it says so, runs a tiny CPU smoke step (checking the imports) and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
python="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ditlaws-site \
    .whl/*.whl
  export PYTHONPATH="/tmp/ditlaws-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
"$python" -c "import torch, diffusers, accelerate; print('torch', torch.__version__, '| diffusers', diffusers.__version__, \
'| cuda', torch.cuda.is_available())"
mkdir -p "$out"
"$python" -m ditlaws.bench.gpu --out "$out/gpu.json"
