#!/usr/bin/env bash
# cluster_rss.sh: idle resident memory and CPU of a cluster of counter-example processes.
#
#   mesh-testkit/scripts/cluster_rss.sh [N [ADAPTER [IDLE_SECONDS]]]
#
#   N             peers, one process each (default 16)
#   ADAPTER       tokio (example `counter` of mesh-tokio, the default) or async-std
#                 (example `counter-smol` of mesh-async-std)
#   IDLE_SECONDS  how long the formed cluster is watched for CPU use (default 60)
#
# Builds the example in release (into $CARGO_TARGET_DIR, default ./target; one job unless
# CARGO_BUILD_JOBS says otherwise), starts N processes on loopback, mesh ports
# BASE_MESH+1.. and HTTP ports BASE_HTTP+1.. (environment, defaults 16000 and 17000),
# every one with password `cluster-rss` and the first as its `--peer` (above 64 peers,
# the counter's connection limit, peer i dials peer i/2 instead: a binary tree. On
# loopback every peer shares one IP, so discovery cannot turn an inbound connection into
# a dial address (it would be the IP with our own port), and newcomers refused by a full
# first peer would find no one else). It polls each
# one's `GET /status` until every peer knows the N-1 others (at most SETTLE seconds,
# default 120), then measures for IDLE_SECONDS: the CPU (utime+stime from
# /proc/PID/stat) of all processes over that time, then each one's VmRSS, RssAnon and
# RssFile (/proc/PID/status) and Pss (/proc/PID/smaps_rollup), and the mean and max of
# VmRSS. Status is checked again at the end.
# MAX_PROTOCOL=2 makes every peer offer only version 2, as Go peers do (default 3: the
# peers speak version 3 to each other), for the same figures under both versions:
#   cluster_rss.sh 100; MAX_PROTOCOL=2 cluster_rss.sh 100
# Every process is killed on exit, however the script ends. Logs: $LOGDIR (default a
# temporary directory, removed on exit unless KEEP_LOGS=1).
#
# Not run in CI: it takes minutes and its figures depend on the machine.
set -euo pipefail

N=${1:-16}
ADAPTER=${2:-tokio}
IDLE=${3:-60}
BASE_MESH=${BASE_MESH:-16000}
BASE_HTTP=${BASE_HTTP:-17000}
SETTLE=${SETTLE:-120}
MAX_PROTOCOL=${MAX_PROTOCOL:-3}
STAR_MAX=64
PASSWORD=cluster-rss

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $ADAPTER in
tokio) pkg=mesh-tokio example=counter ;;
async-std | smol) pkg=mesh-async-std example=counter-smol ;;
*)
    echo "adapter must be tokio or async-std, not $ADAPTER" >&2
    exit 2
    ;;
esac

(cd "$root" && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} CARGO_TARGET_DIR=$target \
    cargo build --quiet --release -p "$pkg" --example "$example")
bin=$target/release/examples/$example

logdir=${LOGDIR:-$(mktemp -d)}
mkdir -p "$logdir"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -z ${LOGDIR:-} && ${KEEP_LOGS:-0} != 1 ]]; then rm -rf "$logdir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for i in $(seq 1 "$N"); do
    args=(--hwaddr "$(printf '00:00:00:00:%02x:%02x' $((i / 256)) $((i % 256)))"
        --nickname "p$i" --mesh "127.0.0.1:$((BASE_MESH + i))"
        --http "127.0.0.1:$((BASE_HTTP + i))" --password "$PASSWORD" --max-protocol "$MAX_PROTOCOL")
    if ((i > 1 && N <= STAR_MAX)); then
        args+=(--peer "127.0.0.1:$((BASE_MESH + 1))")
    elif ((i > 1)); then
        args+=(--peer "127.0.0.1:$((BASE_MESH + i / 2))")
    fi
    "$bin" "${args[@]}" >"$logdir/p$i.log" 2>&1 &
    pids+=($!)
done

# `peers K` of peer i's /status, or -1 if it does not answer.
known() { curl -s --max-time 2 "http://127.0.0.1:$((BASE_HTTP + $1))/status" | awk '$1 == "peers" { print $2; f = 1 } END { if (!f) print -1 }'; }
formed() {
    for i in $(seq 1 "$N"); do
        [[ $(known "$i") == $((N - 1)) ]] || return 1
    done
}

start=$SECONDS
until formed; do
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null || { echo "process $p died; logs in $logdir" >&2; KEEP_LOGS=1; exit 1; }
    done
    if ((SECONDS - start > SETTLE)); then
        echo "not formed after $SETTLE s:" >&2
        for i in $(seq 1 "$N"); do echo "  p$i knows $(known "$i")" >&2; done
        exit 1
    fi
    sleep 1
done
shape=star
((N > STAR_MAX)) && shape=tree
echo "formed: $N $ADAPTER peers ($shape, max protocol $MAX_PROTOCOL) each know $((N - 1)) others after $((SECONDS - start)) s"

ticks=$(getconf CLK_TCK)
# utime + stime of one process, in clock ticks (fields 14 and 15; the name may hold spaces).
cpu() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
declare -A cpu0
for p in "${pids[@]}"; do cpu0[$p]=$(cpu "$p"); done
sleep "$IDLE"
total=0
for p in "${pids[@]}"; do total=$((total + $(cpu "$p") - cpu0[$p])); done

field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# Pss: the process's share of its pages (file-backed ones are shared by all N).
pss() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo -; }
printf '%-5s %8s %10s %10s %10s %8s %8s\n' peer pid VmRSS_KiB RssAnon RssFile Pss threads
sum=0 max=0
for i in $(seq 1 "$N"); do
    p=${pids[$((i - 1))]}
    rss=$(field "$p" VmRSS)
    printf '%-5s %8s %10s %10s %10s %8s %8s\n' "p$i" "$p" "$rss" "$(field "$p" RssAnon)" \
        "$(field "$p" RssFile)" "$(pss "$p")" "$(field "$p" Threads)"
    sum=$((sum + rss))
    ((rss > max)) && max=$rss
done
bad=0
for i in $(seq 1 "$N"); do [[ $(known "$i") == $((N - 1)) ]] || bad=$((bad + 1)); done
awk -v n="$N" -v a="$ADAPTER" -v sum="$sum" -v max="$max" -v t="$total" -v hz="$ticks" \
    -v idle="$IDLE" -v bad="$bad" 'BEGIN {
    printf "N=%d %s: VmRSS mean %.0f KiB (%.2f MiB, %.2f MB), max %.0f KiB (%.2f MiB, %.2f MB)\n",
        n, a, sum / n, sum / n / 1024, sum / n * 1024 / 1e6, max, max / 1024, max * 1024 / 1e6
    printf "CPU over %d s idle: %.2f s in all (%.3f s per process, %.2f %% of one core in all)\n",
        idle, t / hz, t / hz / n, 100 * t / hz / idle
    if (bad) printf "WARNING: %d peers no longer know all others\n", bad
}'
