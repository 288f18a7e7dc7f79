#!/usr/bin/env bash
# bench-rss.sh — the broker's resident memory with N processes (default
# 10000) after serving `procgate ps` (every process) a few times.
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
cleanup() {
	[ -n "${BROKER:-}" ] && kill "$BROKER" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT
ulimit -n 65536 || true
echo 65536 >/proc/sys/kernel/pid_max 2>/dev/null || true
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
grep -E 'VmHWM|VmRSS' /proc/$BROKER/status
