#!/usr/bin/env bash
# The prepared GPU validation run (issue 11): one command on a CUDA machine with PyTorch
# (TensorRT optional, no network needed). From anywhere in the repository copy:
#
#   bash bench/gpu/run.sh [more `lowlight bench gpu` options]
#
# Writes ${OUT:-bench/results}/gpu_<device>.json and .md (rewritten after every stage, so a run
# cut short still leaves its figures) and gpu_run.log (the console). Sized to finish in under
# 8 minutes on an H100/H200; LIMIT_S (default 450) is a hard stop for the benchmark itself.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
PYTHON=${PYTHON:-python3}
RESULTS=${OUT:-bench/results}
LIMIT_S=${LIMIT_S:-450}
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_run.log"
: > "$LOG"
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-5}  # fewer progress redraws in the log

# pure-Python wheels carried in .whl/ (see bench/gpu/README.md); none are needed by default
if compgen -G ".whl/*.whl" > /dev/null; then
    echo "installing carried wheels: $(cd .whl && echo *.whl)" | tee -a "$LOG"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl 2>&1 | tee -a "$LOG"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the package runs from this tree, uninstalled

{ nvidia-smi || echo "nvidia-smi: not available"; } 2>&1 | tee -a "$LOG"
"$PYTHON" - <<'PY' 2>&1 | tee -a "$LOG"
"""What this run imports, and what is missing (stage d needs tensorrt; nothing else optional)."""
import importlib
import sys

print("python", sys.version.split()[0], sys.executable)
for name in ("torch", "numpy", "onnx", "onnxruntime", "yaml", "tqdm", "PIL", "matplotlib",
             "pytest", "setuptools", "tensorrt"):
    try:
        module = importlib.import_module(name)
        print(f"  {name:12s} {getattr(module, '__version__', 'present')}")
    except Exception as err:
        print(f"  {name:12s} MISSING ({type(err).__name__}: {err})")
import torch  # noqa: E402

print("  CUDA available:", torch.cuda.is_available(), "| torch CUDA build:", torch.version.cuda)
PY

timeout --kill-after=20 "$LIMIT_S" "$PYTHON" -m lowlight_perception.tools.cli bench gpu \
    --device cuda --out "$RESULTS" "$@" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
case $status in
    0) echo "bench gpu: every stage ran (results in $RESULTS)" ;;
    124|137) echo "bench gpu: stopped at the ${LIMIT_S} s limit; the stages that ran are in $RESULTS" ;;
    2) echo "bench gpu: did not start (the error line above says why)" ;;
    *) echo "bench gpu: exit status $status (stage errors are in the JSON/Markdown)" ;;
esac 2>&1 | tee -a "$LOG"
ls -l "$RESULTS"/gpu_* 2>&1 | tee -a "$LOG"
exit "$status"
