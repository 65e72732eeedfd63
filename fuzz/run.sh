#!/usr/bin/env bash
# Builds every fuzz target, writes the seed corpora, and runs each target (or the ones
# named) for SECONDS with memory limits that make any large allocation a failure.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (default: 60 s, every target)
#
# A target fails, and so does the script (after running the others), when
#   - cargo-fuzz exits non-zero (a crash, a leak, an allocation or RSS over the limits,
#     a slow input, or a target that does not exist or does not build);
#   - libFuzzer never reported INITED (the target did not start);
#   - it ran fewer than FUZZ_MIN_EXECS executions (default: 50 per second of SECONDS;
#     on a 2-core machine the slowest target, node, does about ten times that, and the
#     parsers thousands of times);
#   - it left a file in fuzz/artifacts/<target>/.
# One summary line per target gives its executions and peak RSS; its whole libFuzzer
# log is in fuzz/target/fuzz-logs/<target>.log.
#
# The build is a release build with debug assertions and overflow checks (`-O -a`), and,
# as cargo-fuzz does by default, AddressSanitizer and `--cfg fuzzing`, which swaps the
# cryptography for the stand-in described in mesh-proto/src/crypto.rs. The seeds are
# written by the `seeds` binary of the same build (src/bin/seeds.rs), which checks that
# each structured seed does what it was written for before the fuzzing starts.
#
# Needs the nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz`).
# Reproduce a crash with
#   cargo +nightly fuzz run -O -a <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(preamble handshake handshake_v3 frame gob features message topology node)
fi
min_execs=${FUZZ_MIN_EXECS:-$((seconds * 50))}
build=(-O -a)

cargo +nightly fuzz build "${build[@]}"
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
# Fresh seeds each run; what the fuzzer added to a corpus earlier stays.
rm -f corpus/*/seed-*
"target/$host/release/seeds"

mkdir -p target/fuzz-logs
summary=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="target/fuzz-logs/$t.log"
  echo "== $t (${seconds}s)"
  status=0
  cargo +nightly fuzz run "${build[@]}" "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=128 -timeout=10 \
    -dict=dict/mesh.dict -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1 \
    || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  problems=()
  [ "$status" -eq 0 ] || problems+=("cargo fuzz exited with status $status")
  grep -qE '^#[0-9]+[[:space:]]+INITED' "$log" || problems+=("the target did not start")
  if ! [[ "${execs:-}" =~ ^[0-9]+$ ]]; then
    problems+=("no execution count in the log")
  elif [ "$execs" -lt "$min_execs" ]; then
    problems+=("$execs executions, fewer than the minimum of $min_execs")
  fi
  if ls "artifacts/$t"/* >/dev/null 2>&1; then
    problems+=("left artifacts in fuzz/artifacts/$t")
  fi
  line="fuzz: $t: ${execs:-?} executions in ${seconds}s, peak RSS ${rss:-?} MB"
  if [ ${#problems[@]} -eq 0 ]; then
    line+=": ok"
  else
    failed=1
    line+=": FAILED ($(IFS=';'; echo "${problems[*]}" | sed 's/;/; /g'))"
    echo "-- last lines of $log:" >&2
    tail -n 30 "$log" >&2
  fi
  echo "$line"
  summary+=("$line")
done

echo "== summary (minimum $min_execs executions per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
