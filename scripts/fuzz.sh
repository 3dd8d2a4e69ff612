#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer) on the nightly toolchain; the targets are in fuzz/.
#
#   scripts/fuzz.sh run [TARGET...]   fuzz each target in turn, growing fuzz/corpus/TARGET;
#                                     bounded by $FUZZ_SECONDS per target (default 300) or,
#                                     when set, $FUZZ_RUNS executions per target
#   scripts/fuzz.sh smoke             about 10 s per target, starting from the committed corpus,
#                                     which stays unchanged (`make test` runs this)
#   scripts/fuzz.sh cmin [TARGET...]  minimise the corpora in place
#   scripts/fuzz.sh regressions       replay fuzz/regressions/TARGET/* (inputs that crashed)
#
# A crash stops the script with a non-zero status; the input is in fuzz/artifacts/TARGET/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
TARGETS=(smtp_session atrn_turnaround dequeue_client data_phase config_text config_structured)
# Release with overflow checks; no AddressSanitizer: the engine forbids unsafe code, and ASan
# costs three quarters of the speed.
BUILD_FLAGS=(-O --debug-assertions --sanitizer none)
# Instrumented builds never mix with the normal ones.
export CARGO_TARGET_DIR="$root/fuzz/target"
CARGO=${CARGO:-cargo}

ensure_tools() {
    if ! rustup toolchain list | grep -q '^nightly'; then
        rustup toolchain install nightly --profile minimal
    fi
    if ! "$CARGO" fuzz --version >/dev/null 2>&1; then
        "$CARGO" install cargo-fuzz --locked
    fi
}

build() {
    "$CARGO" +nightly fuzz build "${BUILD_FLAGS[@]}"
}

bin() {
    echo "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$1"
}

# run TARGET CORPUS_DIR... -- LIBFUZZER_FLAGS...
run_target() {
    local target=$1
    shift
    mkdir -p "fuzz/artifacts/$target"
    "$(bin "$target")" -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 "$@"
}

mode=${1:-run}
shift || true
case "$mode" in
run)
    ensure_tools
    build
    limit=(-max_total_time="${FUZZ_SECONDS:-300}")
    if [ -n "${FUZZ_RUNS:-}" ]; then limit=(-runs="$FUZZ_RUNS"); fi
    for t in "${@:-${TARGETS[@]}}"; do
        echo "== fuzz $t (${limit[*]})"
        mkdir -p "fuzz/corpus/$t"
        nice -n 10 "$(bin "$t")" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
            -print_final_stats=1 -max_len=8192 "${limit[@]}"
    done
    ;;
smoke)
    ensure_tools
    build
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    for t in "${TARGETS[@]}"; do
        echo "== fuzz smoke $t (10 s)"
        mkdir -p "$scratch/$t"
        # New inputs go to the first directory, the scratch one.
        if ! run_target "$t" "$scratch/$t" "fuzz/corpus/$t" -max_total_time=10 -seed=1 \
            >"$scratch/$t.log" 2>&1; then
            tail -n 60 "$scratch/$t.log"
            exit 1
        fi
        grep -E '^#[0-9]+[[:space:]]+DONE|^stat::average_exec_per_sec' "$scratch/$t.log"
    done
    ;;
cmin)
    ensure_tools
    build
    for t in "${@:-${TARGETS[@]}}"; do
        echo "== cmin $t"
        "$CARGO" +nightly fuzz cmin "${BUILD_FLAGS[@]}" "$t" "fuzz/corpus/$t"
    done
    ;;
regressions)
    ensure_tools
    build
    status=0
    for dir in fuzz/regressions/*/; do
        t=$(basename "$dir")
        for input in "$dir"*; do
            if run_target "$t" "$input" >/dev/null 2>&1; then
                echo "ok   $t $(basename "$input")"
            else
                echo "FAIL $t $(basename "$input")"
                status=1
            fi
        done
    done
    exit $status
    ;;
*)
    echo "usage: $0 run|smoke|cmin|regressions [TARGET...]" >&2
    exit 2
    ;;
esac
