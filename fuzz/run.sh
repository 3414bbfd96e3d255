#!/usr/bin/env bash
# Build the libFuzzer targets in fuzz/ on the stable toolchain, replay every target's seed
# corpus and kept crash inputs, then fuzz each target for a bounded time. test.sh calls this;
# it also runs on its own:
#
#   fuzz/run.sh                       every target, FUZZ_SECONDS (default 12) each
#   FUZZ_SECONDS=600 fuzz/run.sh      the long run: ten minutes per target
#   FUZZ_SECONDS=0 fuzz/run.sh        replay only (corpus and regressions, no fuzzing)
#   fuzz/run.sh keystore interchange  only these targets
#   FUZZ_JOBS=1 fuzz/run.sh           one target at a time (default: one per CPU)
#   fuzz/run.sh --seeds               regenerate fuzz/corpus/*/seed-* from the vectors and code
#
# How it builds: no nightly and no cargo-fuzz. The coverage instrumentation libFuzzer needs
# is stable rustc (-C passes=sancov-module and LLVM's sanitizer-coverage options), libFuzzer
# itself is built from C++ by the libfuzzer-sys crate (g++), and no sanitizer is used (the
# code is safe Rust; -Z sanitizer would need nightly). Into target/fuzz, so the main build is
# never invalidated. With a nightly toolchain, `cargo fuzz run TARGET` works in fuzz/ as well.
#
# What it keeps: new inputs found while fuzzing go to target/fuzz/work/TARGET (not checked in;
# merge good ones into fuzz/corpus/TARGET with `BIN -merge=1 fuzz/corpus/TARGET
# target/fuzz/work/TARGET`). A crash stops the run with its input in target/fuzz/artifacts/TARGET/:
# fix the product, then add the input to fuzz/regressions/TARGET/, which every run replays.
set -euo pipefail
cd "$(dirname "$0")/.."

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
OUT=target/fuzz
BIN_DIR=$OUT/$TRIPLE/release
SECONDS_EACH=${FUZZ_SECONDS:-12}
TARGETS=(grpc_sign_request web3signer_json eth2_wire peer_message snapshot_stream interchange
  keystore admin_action attestation revocation tagged_base64 audit_record protection_model)

seeds=0
chosen=()
for arg in "$@"; do
  case "$arg" in
    --seeds) seeds=1 ;;
    -*) echo "unknown option $arg"; exit 2 ;;
    *) chosen+=("$arg") ;;
  esac
done
[ ${#chosen[@]} -gt 0 ] && TARGETS=("${chosen[@]}")

# libFuzzer is C++: libfuzzer-sys compiles it with the system's C++ compiler.
command -v c++ >/dev/null || { echo "fuzz: a C++ compiler is required (Debian: g++)"; exit 1; }

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"

build() {
  local bins=()
  for t in "$@"; do bins+=(--bin "$t"); done
  # --target keeps RUSTFLAGS off build scripts and proc macros (as cargo-fuzz does).
  cargo build --release --manifest-path fuzz/Cargo.toml --target "$TRIPLE" --target-dir "$OUT" \
    "${bins[@]}"
}

if [ $seeds -eq 1 ]; then
  build write_seeds
  SIGNER_FUZZ_REPO=$PWD "$BIN_DIR/write_seeds" -runs=0 2>/dev/null
  exit 0
fi

start=$(date +%s)
build "${TARGETS[@]}"
echo "fuzz: built ${#TARGETS[@]} targets in $(( $(date +%s) - start ))s"

# One target: replay, then fuzz. Prints its PASS/FAIL line (with the crash's first lines),
# and returns non-zero on a failure.
run_target() {
  local t=$1 bin=$BIN_DIR/$1 log=$OUT/$1.log t0 replayed runs corpus
  mkdir -p "$OUT/work/$t" "$OUT/artifacts/$t"
  local inputs=(fuzz/corpus/"$t")
  [ -d fuzz/regressions/"$t" ] && inputs+=(fuzz/regressions/"$t")
  t0=$(date +%s)
  # 1. Replay: every seed and every kept crash input once (-runs=0 runs the corpus, then
  #    stops). A regression input that crashes again fails here, named.
  if ! "$bin" -runs=0 -timeout=10 -artifact_prefix="$OUT/artifacts/$t/" "${inputs[@]}" \
      >"$log" 2>&1; then
    echo "FAIL $t: replaying fuzz/corpus/$t and fuzz/regressions/$t crashed (log: $log)"
    grep -E 'panicked at|ERROR: libFuzzer' -A2 "$log" | head -20 || true
    return 1
  fi
  replayed=$(grep -Eo '^#[0-9]+[[:space:]]+INITED' "$log" | grep -Eo '[0-9]+' | head -1 || echo 0)
  # 2. Fuzz for SECONDS_EACH seconds, starting from the corpus, the regressions and what
  #    earlier runs on this machine found (target/fuzz/work).
  runs=0
  if [ "$SECONDS_EACH" -gt 0 ]; then
    if ! "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/artifacts/$t/" -print_final_stats=1 \
        "$OUT/work/$t" "${inputs[@]}" >>"$log" 2>&1; then
      echo "FAIL $t: a crash after $(( $(date +%s) - t0 ))s; input in $OUT/artifacts/$t/ (log: $log)"
      grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' -A2 "$log" | head -20 || true
      return 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log" | tail -1)
  fi
  corpus=$(find "$OUT/work/$t" fuzz/corpus/"$t" -type f | wc -l)
  echo "PASS $t: replayed ${replayed} inputs, then ${runs:-0} runs in ${SECONDS_EACH}s (corpus now ${corpus} inputs; $(( $(date +%s) - t0 ))s)"
}

# FUZZ_JOBS targets at a time (default: one per CPU), each on one core; a target's lines are
# printed when its lane finishes, in the order of TARGETS.
jobs=${FUZZ_JOBS:-$(nproc)}
[ "$jobs" -ge 1 ] || jobs=1
lane() {
  local i=$1
  for ((k = i; k < ${#TARGETS[@]}; k += jobs)); do
    local t=${TARGETS[$k]}
    if run_target "$t" >"$OUT/$t.result" 2>&1; then echo pass >"$OUT/$t.status"; else echo fail >"$OUT/$t.status"; fi
  done
}
pids=()
for ((i = 0; i < jobs && i < ${#TARGETS[@]}; i++)); do
  lane "$i" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

passed=0
failed=()
for t in "${TARGETS[@]}"; do
  cat "$OUT/$t.result"
  if [ "$(cat "$OUT/$t.status" 2>/dev/null)" = pass ]; then
    passed=$((passed + 1))
  else
    failed+=("$t")
  fi
done

echo "fuzz: ${#TARGETS[@]} targets, ${jobs} at a time, $(( $(date +%s) - start ))s in all"
echo "fuzz targets: ${passed} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: failing targets: ${failed[*]}"; exit 1; }
