#!/usr/bin/env bash
# Bootstraps meshes of growing size through one peer (the bootstrap-1000 scenario at
# other sizes), under version 3 and version 2, keeps each run's JSON report and its
# /usr/bin/time output, then tabulates and plots bytes per peer and convergence time
# against size with `mesh-sim scaling`.
#
#   mesh-sim/scripts/scaling.sh OUT_DIR [SIZES_V3] [SIZES_V2] [LIMIT]
#
# Defaults: SIZES_V3="100 200 500 1000", SIZES_V2="100 200 500", LIMIT=64. Large
# sizes take long (version 2 at 1,000 peers took 45 minutes and 12.6 GB here); a
# report already in OUT_DIR is kept, so an interrupted series resumes.
set -euo pipefail
out=${1:?usage: scaling.sh OUT_DIR [SIZES_V3] [SIZES_V2] [LIMIT]}
sizes_v3=${2:-100 200 500 1000}
sizes_v2=${3:-100 200 500}
limit=${4:-64}
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --quiet --release -p mesh-sim --manifest-path "$root/Cargo.toml"
sim="$root/target/release/mesh-sim"
mkdir -p "$out"
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -v)
run() { # version nodes
    local f="$out/v$1-n$2-limit$limit.json"
    [ -s "$f" ] && return
    echo "version $1, $2 peers, limit $limit" >&2
    "${timer[@]}" "$sim" run bootstrap-1000 --nodes "$2" --connection-limit "$limit" \
        --max-protocol "$1" --json --timing > "$f.part" 2> "$f.time" || true
    mv "$f.part" "$f"
}
for n in $sizes_v3; do run 3 "$n"; done
for n in $sizes_v2; do run 2 "$n"; done
"$sim" scaling "$out"/*.json --plots "$out" --png
