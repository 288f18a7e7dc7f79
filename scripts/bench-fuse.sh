#!/usr/bin/env bash
# bench-fuse.sh — unmodified `ps aux` run by an unprivileged member of
# group procgate on procgate mount's /proc against the same `ps aux` on
# the real /proc, side by side in one run, with N processes running
# (default 3000); then the daemon's memory while it serves them.
#
#   sudo scripts/bench-fuse.sh [N] [RUNS]
#
# Needs root (it mounts, and starts the target processes). Both sides run
# in a mount namespace of their own, as the member (setpriv), the FUSE
# side with the mount bound over /proc; each prints the median of RUNS
# runs. One cat of a status file and 64 parallel readers are measured by
# the Go benchmark: go test -run '^$' -bench BenchmarkRead ./fuseproc/
set -euo pipefail
N=${1:-3000}
RUNS=${2:-15}
[ "$(id -u)" = 0 ] || { echo "bench-fuse.sh: run as root" >&2; exit 2; }
cd "$(dirname "$0")/.."
BIN=$(mktemp -d)/procgate
go build -o "$BIN" ./cmd/procgate
chmod 755 "$(dirname "$BIN")" "$BIN"
DIR=$(mktemp -d); chmod 755 "$DIR"; mkdir "$DIR/proc"
made_group=""
if ! getent group procgate >/dev/null; then groupadd --system procgate; made_group=1; fi
GID=$(getent group procgate | cut -d: -f3)
pids=()
cleanup() {
	[ -n "${MOUNT:-}" ] && kill -TERM "$MOUNT" 2>/dev/null && wait "$MOUNT" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	umount -l "$DIR/proc" 2>/dev/null || true
	[ -n "$made_group" ] && groupdel procgate || true
	rm -rf "$DIR" "$(dirname "$BIN")"
}
trap cleanup EXIT
have=$(ls /proc | grep -c '^[0-9]')
for ((i = have; i < N; i++)); do
	sleep 3600 &
	pids+=($!)
done
"$BIN" mount "$DIR/proc" ${MOUNT_ARGS:-} >"$DIR/mount.log" 2>&1 &
MOUNT=$!
for _ in $(seq 100); do grep -q msg=serving "$DIR/mount.log" && break; sleep 0.1; done
echo "processes: $(ls /proc | grep -c '^[0-9]')"
AS="setpriv --reuid=65534 --regid=65534 --groups=$GID --"
# times RUNS runs of ps aux in a new mount namespace; $1: what to bind
# over /proc ("" for none); prints one duration in microseconds per line.
times() {
	unshare -m --propagation private sh -c '
		[ -n "$1" ] && mount --bind "$1" /proc
		shift
		'"$AS"' ps aux >/dev/null  # warm up
		for i in $(seq '"$RUNS"'); do
			s=$(date +%s%N); '"$AS"' ps aux >/dev/null; e=$(date +%s%N)
			echo $(((e - s) / 1000))
		done' sh "$1"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rows() { unshare -m --propagation private sh -c '[ -n "$1" ] && mount --bind "$1" /proc; '"$AS"' ps aux | wc -l' sh "$1"; }
ma=$(times "" | median)
mb=$(times "$DIR/proc" | median)
echo "ps aux, member, real /proc:        median $((ma / 1000)) ms over $RUNS runs ($(rows "") lines)"
echo "ps aux, member, procgate mount:    median $((mb / 1000)) ms over $RUNS runs ($(rows "$DIR/proc") lines)"
awk -v a="$ma" -v b="$mb" 'BEGIN {printf "ratio mount / real: %.2f (target <= 2.0, aim 1.5)\n", b / a}'
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
front=$MOUNT
rr=0
for c in $(pgrep -P "$MOUNT" || true); do
	grep -q reader "/proc/$c/cmdline" 2>/dev/null && rr=$(rss "$c")
done
fr=$(rss "$front")
echo "daemon RSS after serving $N processes: front $((fr / 1024)) MiB + reader $((rr / 1024)) MiB = $(((fr + rr) / 1024)) MiB (target <= 128 MiB)"
