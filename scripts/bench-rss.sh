#!/usr/bin/env bash
# bench-rss.sh — the broker's resident memory with N processes (default
# 10000) after serving `procgate ps` (every process) a few times: as
# nobody (plain items, no model) and as root with --columns exe,fds,io
# (the model's view of every process). VmHWM, the peak, is what issue 5's
# target (≤ 64 MiB) is about. The same measurement runs in Go, as part of
# the benchmark smoke: BenchmarkBrokerRSS10k in broker/.
#
#   sudo scripts/bench-rss.sh [N]
set -euo pipefail
N=${1:-10000}
[ "$(id -u)" = 0 ] || { echo "bench-rss.sh: run as root" >&2; exit 2; }
cd "$(dirname "$0")/.."
D=$(mktemp -d); chmod 755 "$D"
BIN=$D/procgate
CGO_ENABLED=0 go build -o "$BIN" ./cmd/procgate
pids=()
OLD_PID_MAX=$(cat /proc/sys/kernel/pid_max)
cleanup() {
	[ -n "${BROKER:-}" ] && kill "$BROKER" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "$OLD_PID_MAX" >/proc/sys/kernel/pid_max 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
[ "$OLD_PID_MAX" -ge $((4 * N + 1024)) ] || echo $((4 * N + 1024)) >/proc/sys/kernel/pid_max 2>/dev/null || true
have=$(ls /proc | grep -c '^[0-9]')
for ((i = have; i < N; i++)); do
	sleep 3600 &
	pids+=($!)
done
"$BIN" serve --socket "$D/s.sock" >"$D/serve.log" 2>&1 &
BROKER=$!
for _ in $(seq 50); do [ -S "$D/s.sock" ] && break; sleep 0.1; done
echo "processes: $(ls /proc | grep -c '^[0-9]')"
for _ in 1 2 3; do
	/usr/bin/time -f "procgate ps: %e s" setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" ps --socket "$D/s.sock" >/dev/null
	/usr/bin/time -f "procgate ps --columns exe,fds,io (root): %e s" "$BIN" ps --columns exe,fds,io --socket "$D/s.sock" >/dev/null
done
# The broker and its descendants (with privilege separation the gate runs
# in a child process): each process's figures, then the sum.
descendants() {
	echo "$1"
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do descendants "$c"; done
}
hwm=0 rss=0
for p in $(descendants "$BROKER"); do
	h=$(awk '/^VmHWM/ {print $2}' /proc/"$p"/status) r=$(awk '/^VmRSS/ {print $2}' /proc/"$p"/status)
	echo "pid $p ($(cat /proc/"$p"/comm)): VmHWM $h kB, VmRSS $r kB"
	hwm=$((hwm + h)) rss=$((rss + r))
done
echo "VmHWM: $hwm kB"
echo "VmRSS: $rss kB"
