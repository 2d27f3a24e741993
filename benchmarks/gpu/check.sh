#!/usr/bin/env bash
# The one-shot GPU check: run once from the repository root on a machine with an NVIDIA GPU.
#
#   bash benchmarks/gpu/check.sh              # on the GPU machine (about 8 minutes at most)
#   bash benchmarks/gpu/check.sh --dry-run    # here: array-api-strict's second device stands in
#   bash benchmarks/gpu/check.sh --phases env,checks   # a subset (names below)
#
# Phases, in order of value: env, checks, pytest, comm, bench, sklearn, cli. Each has a time cap
# and the whole run a deadline (GPU_CHECK_DEADLINE, 480 s), so a hang still returns the logs.
# At most 8 files land in $OUT; 99_summary.txt is written last, with every FAIL line and the
# counts, and ends with a RESULT line. The exit status is 1 when anything failed.
# See benchmarks/gpu/README.md for the preparation (wheels in .whl/) and the one call.
set -u
DRY=0
PHASES=env,checks,pytest,comm,bench,sklearn,cli
while (( $# )); do
    case $1 in
        --dry-run) DRY=1 ;;
        --phases) PHASES=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "check.sh: unknown option $1 (use --dry-run, --phases a,b)" >&2; exit 2 ;;
    esac
    shift
done
HERE=benchmarks/gpu
[[ -f $HERE/check.py ]] || { echo "check.sh: run it from the repository root" >&2; exit 2; }
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
DEADLINE=${GPU_CHECK_DEADLINE:-480}
T0=$(date +%s)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PY=${PYTHON:-python3}
if (( DRY )); then DEV=strict; else DEV=cuda; fi
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg CUPY_CACHE_DIR=/tmp/cupy-kernels
export NCCL_DEBUG=WARN PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
STATUS=$WORK/phases   # one line per phase: PASS / FAIL / SKIP name (why)
: > "$STATUS"

now() { echo $(( $(date +%s) - T0 )); }
wanted() { [[ ,$PHASES, == *,$1,* ]]; }
skip() { echo "SKIP $1: $2" >> "$STATUS"; }

# phase NAME CAP LOG command...: the command under `timeout`, its output appended to LOG
phase() {
    local name=$1 cap=$2 log=$3; shift 3
    local left=$(( DEADLINE - $(now) - 10 ))
    if (( left < 10 )); then skip "$name" "out of time (deadline ${DEADLINE}s)"; return; fi
    (( cap > left )) && cap=$left
    [[ $log == *.json ]] || echo "===== [$(now)s] $name (cap ${cap}s): $*" >> "$log"
    local t=$(date +%s) rc
    timeout -k 5 "$cap" "$@" >> "$log" 2>&1
    rc=$?
    local took=$(( $(date +%s) - t ))
    if (( rc == 0 )); then echo "PASS $name (${took}s)" >> "$STATUS"
    elif (( rc == 124 || rc == 137 )); then echo "FAIL $name: timed out after ${cap}s" >> "$STATUS"
    else echo "FAIL $name: exit $rc (${took}s), see $(basename "$log")" >> "$STATUS"; fi
}

# -- the carried wheels (on the GPU machine, whatever --phases says: every phase needs them) ---
install_wheels() {
    local log=$OUT/00_env.txt
    if (( DRY )); then skip wheels "dry run: this environment's packages are used"; return; fi
    # array-api-compat and -strict: pure Python, --target is enough
    if $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
            .whl/array_api_compat-*.whl .whl/array_api_strict-*.whl >> "$log" 2>&1; then
        export PYTHONPATH=/tmp/site:$PYTHONPATH
    else
        echo "FAIL wheels: array-api-compat/-strict from .whl/ did not install (see README)" >> "$STATUS"
    fi
    # mpich: --prefix, not --target (--target keeps mpiexec but drops lib/libmpi.so.12)
    if $PY -m pip install -q --ignore-installed --no-index --no-deps --no-compile --no-cache-dir \
            --prefix /tmp/mpich .whl/mpich-*.whl >> "$log" 2>&1; then
        export PATH=/tmp/mpich/bin:$PATH LD_LIBRARY_PATH=/tmp/mpich/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    else
        echo "FAIL wheels: mpich from .whl/ did not install (see README)" >> "$STATUS"
    fi
}

# -- env: the machine, versions, `backprop info` ------------------------------------------------
env_phase() {
    local log=$OUT/00_env.txt
    if (( DRY )); then skip nvidia-smi "dry run, no GPU"
    else nvidia-smi >> "$log" 2>&1 || echo "FAIL nvidia-smi: exit $?" >> "$STATUS"; fi
    { echo "python: $(command -v $PY) $($PY -V 2>&1), $(nproc) cores"
      $PY -m pip list 2>/dev/null | grep -i -E "^(cupy|numpy|scipy|scikit-learn|torch|mpi4py|nvidia-nccl|array.api|pytest)"
      echo "PYTHONPATH=$PYTHONPATH"; echo "mpiexec: $(command -v mpiexec || echo none)"; } >> "$log" 2>&1
    phase "backprop info" 60 "$log" $PY -m backprop info
}

# -- pytest: the whole suite with CuPy present (dry run: a small slice) ------------------------
pytest_phase() {
    local log=$OUT/20_pytest.log args=(-q -rfE -p no:cacheprovider)
    if (( DRY )); then
        phase pytest 60 "$log" $PY -m pytest "${args[@]}" tests/test_backends.py -k strict
        return
    fi
    $PY -c "import xdist" 2>/dev/null && args+=(-n 8)
    $PY -c "import pytest_timeout" 2>/dev/null && args+=(--timeout 120)
    # this file runs the dry run of this very check: not needed here
    phase pytest 150 "$log" $PY -m pytest "${args[@]}" -rs --durations=15 --ignore=tests/test_gpu_check.py
}

# -- comm: NCCL with one rank (the real all-reduce), MPI with two ranks staging device buffers --
comm_phase() {
    local log=$OUT/30_comm.log
    if ! command -v mpiexec > /dev/null; then skip comm "no mpiexec (install the mpich wheel, README)"; return; fi
    if (( DRY )); then skip nccl "needs CuPy on a GPU"
    else phase nccl 30 "$log" mpiexec -n 1 $PY $HERE/check.py comm nccl --device cuda; fi
    phase mpi 30 "$log" mpiexec -n 2 $PY $HERE/check.py comm mpi --device $DEV
}

# -- bench: every size on cpu and cuda beside PyTorch, then the table ----------------------------
bench_phase() {
    local json=$OUT/40_bench.json
    if (( DRY )); then
        phase bench 30 "$json" $PY -m backprop bench --sizes xor --devices cpu,$DEV --steps 5 --repeats 2 \
            --json --quiet
    else
        local compare=(); $PY -c "import torch" 2>/dev/null && compare=(--compare torch)
        phase bench 100 "$json" $PY -m backprop bench --devices cpu,cuda "${compare[@]}" --json --quiet
    fi
    [[ -s $json ]] && phase "bench table" 15 "$OUT/41_bench.txt" $PY benchmarks/render.py "$json"
}

# -- sklearn: scikit-learn's array-API checks (SCIPY_ARRAY_API=1 for this phase only) -----------
sklearn_phase() {
    local select="array_api and (cupy or cuda)"
    (( DRY )) && select="array_api_input and array_api_strict"  # both estimators, every solver and dtype
    phase sklearn 45 "$OUT/20_pytest.log" env SCIPY_ARRAY_API=1 $PY -m pytest -q -rfE -p no:cacheprovider \
        tests/test_estimators.py -k "$select"
}

install_wheels
wanted env && env_phase
wanted checks && phase checks 120 "$OUT/10_checks.log" $PY $HERE/check.py checks --device $DEV
wanted pytest && pytest_phase
wanted comm && comm_phase
wanted bench && bench_phase
wanted sklearn && sklearn_phase
wanted cli && phase cli 60 "$OUT/50_cli.log" $PY $HERE/check.py cli --device $DEV

# -- the summary, last: phases, every FAIL and SKIP line, the counts ---------------------------
summarize() {
    local logs=() f
    for f in 10_checks.log 30_comm.log 50_cli.log; do [[ -f $OUT/$f ]] && logs+=("$OUT/$f"); done
    echo "GPU check ($( ((DRY)) && echo "dry run, device $DEV" || echo "device $DEV" )), $(now)s," \
        "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "== phases"; cat "$STATUS"
    echo "== checks that failed"
    (( ${#logs[@]} )) && grep -h "^FAIL " "${logs[@]}"
    [[ -f $OUT/20_pytest.log ]] && grep -h -E "^(FAILED|ERROR) " "$OUT/20_pytest.log" | head -n 100
    echo "== checks skipped"
    (( ${#logs[@]} )) && grep -h "^SKIP " "${logs[@]}"
    echo "== counts"
    (( ${#logs[@]} )) && grep -h "^TALLY " "${logs[@]}"
    [[ -f $OUT/20_pytest.log ]] && grep -h -E "^=* ?[0-9]+ (passed|failed|error)|^[0-9]+ (passed|failed|error)" \
        "$OUT/20_pytest.log" | sed 's/^=* */pytest: /; s/ =*$//'
    local fails
    fails=$(( $(grep -c "^FAIL" "$STATUS") + $(cat "${logs[@]}" /dev/null | grep -c "^FAIL ") ))
    echo "RESULT: $(grep -c "^PASS" "$STATUS") phases passed, $(grep -c "^FAIL" "$STATUS") failed," \
        "$(grep -c "^SKIP" "$STATUS") skipped; $fails FAIL lines"
}
summarize > "$WORK/summary" 2>&1
mv "$WORK/summary" "$OUT/99_summary.txt"
cat "$OUT/99_summary.txt"
! grep -q -E "^FAIL" "$STATUS" && ! cat "$OUT"/*.log /dev/null | grep -q "^FAIL "
