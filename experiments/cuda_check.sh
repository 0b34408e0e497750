#!/usr/bin/env bash
# The CUDA check (experiments/results/cuda_check.md) in one go, on a machine with a GPU:
#
#     OUT=/some/dir bash experiments/cuda_check.sh
#
# 1. installs the wheels in .whl/ (if any: a machine without a package index gets the missing
#    dependencies that way) into /tmp/site;
# 2. prints the GPU, the driver, torch/CUDA/cuDNN and the versions of the dependencies;
# 3. runs the cuda-marked tests (pytest -m cuda: tests/test_cuda.py);
# 4. runs a short search on cuda (resnet_like, 2 GFLOPs, 8 trials, default protocol) and
#    prints each trial's time;
# 5. measures the trainer's throughput on cuda (resnet18, mobilenet_v2, default protocol);
# 6. compares channels_last on/off on cuda and checks two runs under one seed for equality.
#
# Everything is printed and written to $OUT/log (plus $OUT/junit.xml). Each step has its own
# time limit, so the whole script ends within about 8 minutes. Without CUDA, step 3 shows the
# tests skipped with their reason, steps 4-5 are not run, and the script exits 3.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

step() { printf '\n===== %s (%s UTC)\n' "$*" "$(date -u +%H:%M:%S)"; }

main() {
    local t0=$SECONDS
    if compgen -G ".whl/*.whl" >/dev/null; then
        step "install $(ls .whl/*.whl | wc -l) wheels into /tmp/site"
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || { echo "wheel install failed"; return 1; }
        export PYTHONPATH=$PWD:/tmp/site
    else
        export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    fi

    step "device and versions"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 \
        || echo "nvidia-smi: not available"
    python3 - <<'EOF'
import importlib.metadata as md, os, platform, sys
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, cuda available {torch.cuda.is_available()}, "
      f"{os.cpu_count()} CPUs")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device 0: {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, "
          f"capability {p.major}.{p.minor}")
for name in ("optuna", "sqlalchemy", "alembic", "plotly", "mlxtend", "ray", "numpy", "networkx",
             "pytest"):
    try:
        print(f"  {name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"  {name}: NOT INSTALLED")
EOF
    local cuda
    cuda=$(python3 -c 'import torch; print(int(torch.cuda.is_available()))') || cuda=0

    step "pytest -m cuda"
    timeout -k 10 200 python3 -m pytest -m cuda -vv -rs -p no:cacheprovider \
        --junitxml="$OUT/junit.xml" tests/test_cuda.py
    echo "pytest exit code $?"

    if [ "$cuda" != 1 ]; then
        step "no CUDA device: the search and the throughput need one; not run"
        return 3
    fi

    step "short search on cuda (default protocol)"
    timeout -k 10 130 python3 experiments/cuda_check.py search --trials 8 --budget 2GFLOPs
    echo "search step exit code $?"

    step "trainer throughput on cuda (default protocol)"
    timeout -k 10 70 python3 experiments/cuda_check.py throughput --nets resnet18 mobilenet_v2
    echo "throughput step exit code $?"

    step "channels_last on/off and seed determinism on cuda"
    timeout -k 10 70 python3 experiments/cuda_check.py layout --nets resnet18 mobilenet_v2
    echo "layout step exit code $?"

    step "done in $((SECONDS - t0)) s"
}

main 2>&1 | tee "$OUT/log"
exit "${PIPESTATUS[0]}"
