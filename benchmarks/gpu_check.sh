#!/usr/bin/env bash
# GPU check, in one go, for a machine with a CUDA GPU (CI has none): build the extension with its CUDA kernels,
# run the op tests on the GPU, time the fused kernels against eager and compiled torch, train and probe a short run
# on the GPU, time training throughput on the GPU, and run the fast suite with CUDA visible (last: it takes the
# longest, about 4 minutes with 12 xdist workers on 16 cores, which the script's deadline may cut).
#
#     bash benchmarks/gpu_check.sh OUTDIR [DEADLINE_S]
#
# Every step is logged to OUTDIR/log.txt with its exit status and time; a failed step does not stop the later ones.
# DEADLINE_S (default 480) bounds the whole script: each step's timeout is cut to what is left, so the script ends
# inside a lease. Uses `python3` (override with PY=...); the extension is built in place, for sm_80 and sm_90.
set -u
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR [DEADLINE_S]}
DEADLINE=$(($(date +%s) + ${2:-480}))
PY=${PY:-python3}
mkdir -p "$OUT"
LOG=$OUT/log.txt
: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }

# step NAME CAP_S CMD...: runs CMD with timeout min(CAP_S, time left), appends its output to the log.
step() {
    local name=$1 cap=$2
    shift 2
    local left=$((DEADLINE - $(date +%s)))
    if ((left < 10)); then
        say "== $name: SKIPPED (deadline)"
        return
    fi
    ((cap > left)) && cap=$left
    say "== $name (cap ${cap} s): $*"
    local t0=$(date +%s)
    timeout -k 5 "$cap" "$@" >>"$LOG" 2>&1
    local rc=$?
    say "== $name: rc=$rc in $(($(date +%s) - t0)) s"
}

export PYTHONUNBUFFERED=1
# The toolkit folder: /usr/local/cuda where it exists, else the one that holds the nvcc on PATH.
NVCC=/usr/local/cuda/bin/nvcc
[ -x "$NVCC" ] || NVCC=$(readlink -f "$(command -v nvcc)")
export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}

step info 30 bash -c "nvidia-smi -L; $NVCC --version | tail -2; $PY -c 'import torch, sys; \
print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))'"
# Editable install without dependencies: the machine's own torch is used (the pin is for CPU installs).
step build 300 $PY -m pip install -q --no-deps --no-build-isolation --no-index -e .
step ext 30 $PY -c "import torch; from prednet2 import ops; assert ops.extension_available(); \
assert torch._C._dispatch_has_kernel_for_dispatch_key('prednet2::error_unit', 'CUDA'); print('CUDA kernel registered')"
# The raw op's C++ argument errors run as their own step: on one machine (H200, torch 2.11, gcc 13.3) throwing them
# crashed the process while unwinding (docs/results/extension.md, CUDA), which would hide every test after it.
step test_ops 180 $PY -m pytest tests/test_ops.py -q -p no:cacheprovider --junitxml="$OUT/test_ops.xml" \
    --deselect tests/test_ops.py::test_bad_inputs_raise_clear_errors
step test_ops_errors 60 $PY -m pytest tests/test_ops.py -q -p no:cacheprovider -k test_bad_inputs_raise_clear_errors
step bench_error_unit 120 $PY benchmarks/error_unit.py --device cuda --channels 48 192 --sizes 64x80 16x20 \
    --batch 32 --reps 50 --json "$OUT/error_unit_cuda.json"
RUN=$(mktemp -d)  # the training run stays out of OUTDIR: its checkpoints and logs are not figures
step train_cuda 150 $PY train.py --data synthetic:shapes --out "$RUN" --steps 200 --device cuda --no-progress \
    --set data.n_synthetic=512 --set data.num_workers=8
[ -f "$RUN/summary.json" ] && cp "$RUN/summary.json" "$OUT/train_cuda_summary.json"
step probe_cuda 120 $PY -m eval.linear_probe --checkpoint "$RUN/checkpoints/last.pt" --device cuda \
    --data synthetic:shapes:direction --seeds 3 --n-train 384 --n-test 192 --no-progress --out "$OUT/probe_cuda.json"
step throughput 120 $PY benchmarks/train_throughput.py --device cuda --T 10 80 --json "$OUT/throughput_cuda.json"
XDIST=()
$PY -c "import xdist" 2>/dev/null && XDIST=(-n 12)
step suite 300 $PY -m pytest -m "not slow" -q -p no:cacheprovider "${XDIST[@]}" --ignore=tests/test_ops.py \
    --junitxml="$OUT/suite.xml"
say "== done"
