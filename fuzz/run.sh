#!/usr/bin/env bash
# Builds and runs every fuzz target (or the ones named) for SECONDS each, with memory
# limits that make any large allocation a failure.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (default: 60 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz`).
# A crash leaves its input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run -O -a <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(preamble handshake frame gob features message topology node)
fi
# Release build with debug assertions and overflow checks; the seeds come from the
# `seeds` binary of the same build (they use its stand-in for the cryptography).
cargo +nightly fuzz build -O -a
rm -f corpus/*/seed-*
"target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release/seeds"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t (${seconds}s)"
  cargo +nightly fuzz run -O -a "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=128 \
    -dict=dict/mesh.dict -print_final_stats=1 -artifact_prefix="artifacts/$t/" 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|ERROR)" || true
  if ls "artifacts/$t"/* >/dev/null 2>&1; then
    echo "FAILED: $t left artifacts in fuzz/artifacts/$t" >&2
    exit 1
  fi
done
