#!/usr/bin/env bash
# bench-ps.sh — `procgate ps` run by an unprivileged user through the
# broker versus `ps aux` run as root, side by side on the same machine,
# with N processes running (default 3000).
#
#   sudo scripts/bench-ps.sh [N] [RUNS]
#
# Needs root (it starts the broker and the target processes). Uses
# hyperfine when installed, else times RUNS runs of each and prints the
# medians.
set -euo pipefail
N=${1:-3000}
RUNS=${2:-15}
[ "$(id -u)" = 0 ] || { echo "bench-ps.sh: run as root" >&2; exit 2; }
cd "$(dirname "$0")/.."
BIN=$(mktemp -d)/procgate
CGO_ENABLED=0 go build -o "$BIN" ./cmd/procgate
chmod 755 "$(dirname "$BIN")" "$BIN"
DIR=$(mktemp -d); chmod 755 "$DIR"
SOCK=$DIR/procgate.sock
pids=()
cleanup() {
	[ -n "${BROKER:-}" ] && kill "$BROKER" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$DIR" "$(dirname "$BIN")"
}
trap cleanup EXIT
have=$(ls /proc | grep -c '^[0-9]')
for ((i = have; i < N; i++)); do
	sleep 3600 &
	pids+=($!)
done
# SERVE_ARGS: extra arguments for procgate serve (e.g. --no-privsep).
# shellcheck disable=SC2086
"$BIN" serve --socket "$SOCK" ${SERVE_ARGS:-} >"$DIR/serve.log" 2>&1 &
BROKER=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
echo "processes: $(ls /proc | grep -c '^[0-9]')"
PS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
"${PS_USER[@]}" "$BIN" ps --socket "$SOCK" >/dev/null # warm up
if command -v hyperfine >/dev/null; then
	hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$DIR/times.json" \
		-n "ps aux (root)" "ps aux" \
		-n "procgate ps (nobody, via broker)" "${PS_USER[*]} $BIN ps --socket $SOCK"
	# The target is on medians: print them and their ratio.
	mapfile -t med < <(grep -o '"median": *[0-9.e-]*' "$DIR/times.json" | awk '{print $2}')
	awk -v a="${med[0]}" -v b="${med[1]}" 'BEGIN {
		printf "median ps aux (root): %.1f ms; procgate ps (nobody, via broker): %.1f ms; ratio %.2f (target <= 1.0)\n", a * 1000, b * 1000, b / a }'
	exit 0
fi
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000)); }
a=(); b=()
for _ in $(seq "$RUNS"); do
	a+=("$(t ps aux)")
	b+=("$(t "${PS_USER[@]}" "$BIN" ps --socket "$SOCK")")
done
ma=$(printf '%s\n' "${a[@]}" | median)
mb=$(printf '%s\n' "${b[@]}" | median)
echo "ps aux (root):                    median $((ma / 1000)) ms over $RUNS runs"
echo "procgate ps (nobody, via broker): median $((mb / 1000)) ms over $RUNS runs"
awk -v a="$ma" -v b="$mb" 'BEGIN {printf "ratio procgate ps / ps aux: %.2f\n", b / a}'
