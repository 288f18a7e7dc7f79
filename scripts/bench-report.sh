#!/usr/bin/env bash
# bench-report.sh — procgate report on this machine grown to N processes
# (default 3000, under several users and groups), RUNS times per output
# format (default 5), median wall time and maximum RSS, side by side with
# the cost of reading the machine alone (procgate snapshot); then
# MACHINES snapshot files (default 100) made from the snapshot of this
# machine, each varied (users' uids, Yama, fs.suid_dumpable), reported
# on together with procgate report --snapshot, side by side with the
# cost of loading them alone (procgate check on the same files, one
# check each).
#
#   sudo scripts/bench-report.sh [N] [RUNS] [MACHINES]
#
# Needs root (it starts processes under other users and reads every
# process). Wall time and RSS come from GNU time (/usr/bin/time -f; apt
# package time). The processes it starts, each group in a session of its
# own, are killed on exit, also on failure or interrupt. The in-process
# figures (report.Build by processes and by classes, the live report
# step by step, the fleet) come from the Go benchmarks:
#   go test -run '^$' -bench . -benchmem ./report/
# (PROCGATE_BENCH_LARGE=1 for the fleet of 100 machines).
set -euo pipefail
N=${1:-3000}
RUNS=${2:-5}
MACHINES=${3:-100}
[ "$(id -u)" = 0 ] || { echo "bench-report.sh: run as root" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench-report.sh: needs GNU time (/usr/bin/time; apt-get install time)" >&2; exit 2; }
command -v setpriv >/dev/null || { echo "bench-report.sh: needs setpriv (util-linux)" >&2; exit 2; }
cd "$(dirname "$0")/.."
DIR=$(mktemp -d)
BIN=$DIR/procgate
go build -o "$BIN" ./cmd/procgate

groups=() # process group ids of the sleepers, one per credential set
cleanup() {
	for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

count() { ls /proc | grep -c '^[0-9]'; }

# Sleepers: the missing processes, spread over six credential sets
# (root, and users with and without supplementary groups). Each set is
# one shell in a session of its own (setsid: its process group is its
# pid) that starts its share of sleeps and waits.
creds=(
	""
	"--reuid=1001 --regid=1001 --clear-groups"
	"--reuid=1002 --regid=1002 --groups=1002,27"
	"--reuid=1003 --regid=100 --clear-groups"
	"--reuid=1003 --regid=1003 --groups=4,24,27"
	"--reuid=65534 --regid=65534 --clear-groups"
)
have=$(count)
missing=$((N - have))
start=$(date +%s%N)
if [ "$missing" -gt 0 ]; then
	per=$(((missing + ${#creds[@]} - 1) / ${#creds[@]}))
	for c in "${creds[@]}"; do
		n=$((missing < per ? missing : per))
		[ "$n" -gt 0 ] || break
		missing=$((missing - n))
		# shellcheck disable=SC2086 # $c is a list of options
		setsid setpriv $c -- sh -c 'i=0; while [ $i -lt "$1" ]; do sleep 3600 & i=$((i + 1)); done; wait' sh "$n" &
		groups+=($!)
	done
	for _ in $(seq 1200); do
		[ "$(count)" -ge "$N" ] && break
		sleep 0.1
	done
fi
echo "processes: $(count) (started $((N - have > 0 ? N - have : 0)) in $((($(date +%s%N) - start) / 1000000)) ms)"
echo "kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maxof() { sort -n | tail -1; }
# measure LABEL CMD...: runs CMD RUNS times under GNU time; prints the
# median wall time and the median and maximum of the maximum RSS.
measure() {
	local label=$1
	shift
	local t=$DIR/time.txt
	: >"$t"
	for _ in $(seq "$RUNS"); do
		if ! /usr/bin/time -a -o "$t" -f '%e %M' "$@" >"$DIR/out.txt" 2>"$DIR/err.txt"; then
			echo "$label: failed: $(grep -v '^Command exited' "$DIR/err.txt" | head -3)"
			return 0
		fi
	done
	local wall rss maxrss
	wall=$(grep -v '^Command' "$t" | awk '{print $1}' | median)
	rss=$(grep -v '^Command' "$t" | awk '{print $2}' | median)
	maxrss=$(grep -v '^Command' "$t" | awk '{print $2}' | maxof)
	printf '%-58s median %6.2f s   max RSS median %4d MiB, max %4d MiB   (%d processes now)\n' "$label" "$wall" $((rss / 1024)) $((maxrss / 1024)) "$(count)"
}

echo
echo "== live machine, $RUNS runs each =="
measure "baseline: procgate snapshot -o /dev/null" "$BIN" snapshot -o /dev/null
for f in json openmetrics text dot html; do
	measure "procgate report -o $f --out /dev/null" "$BIN" report -o "$f" --out /dev/null
done
"$BIN" report -o json --out "$DIR/live.json"
python3 - "$DIR/live.json" <<'EOF' 2>/dev/null || true
import json, sys
m = json.load(open(sys.argv[1]))["machines"][0]
rel = [e for e in m["edges"] if e.get("relation")]
print("report: %d processes, %d principal and %d target classes, %d edges (%d of related pairs, %d related pairs), %d findings"
      % (m["processes"], len(m["principals"]), len(m["targets"]), len(m["edges"]), len(rel), sum(e["pairs"] for e in rel), len(m["findings"])))
EOF

# The fleet: the snapshot of this machine, varied per machine: the users'
# uids (1001–1003 become machine-specific, as on machines whose users
# differ), Yama (none, scope 1, or scope i mod 3) and fs.suid_dumpable.
# One check each, so that procgate check can load them as the baseline.
"$BIN" snapshot -o "$DIR/snap.yaml"
first=$(grep -m1 -o "name: '[^']*'" "$DIR/snap.yaml" | sed "s/name: //")
mkdir "$DIR/fleet"
for i in $(seq 0 $((MACHINES - 1))); do
	f=$DIR/fleet/node$(printf %03d "$i").yaml
	yama=()
	case $((i % 3)) in
	1) yama=(-e 's/^  lsm: \[(.*)\]$/  lsm: [\1, yama]\n  yama: {ptrace_scope: 1}/') ;;
	2) yama=(-e "s/^  lsm: \\[(.*)\\]\$/  lsm: [\\1, yama]\\n  yama: {ptrace_scope: $((i / 3 % 3))}/") ;;
	esac
	sed -E -e "s/\b(uid|gid): 1001\b/\1: $((2000 + i))/g" \
		-e "s/\b(uid|gid): 1002\b/\1: $((3000 + i % 10))/g" \
		-e "s/\b(uid|gid): 1003\b/\1: $((4000 + i % 3))/g" \
		-e "s/^  suid_dumpable: [0-9]/  suid_dumpable: $((i % 2 * 2))/" \
		"${yama[@]}" "$DIR/snap.yaml" >"$f"
	printf 'checks:\n  - {name: load, caller: %s, target: %s, mode: read_fscreds}\n' "$first" "$first" >>"$f"
done
echo
echo "== fleet: $MACHINES snapshots of $(grep -c '^  - {name:' "$DIR/snap.yaml") tasks, $RUNS runs each =="
measure "baseline: procgate check (load the $MACHINES files)" "$BIN" check --scenario "$(echo "$DIR"/fleet/*.yaml | tr ' ' ,)"
measure "procgate report --snapshot ×$MACHINES -o json" "$BIN" report --snapshot "$(echo "$DIR"/fleet/*.yaml | tr ' ' ,)" -o json --out "$DIR/fleet.json"
measure "procgate report --snapshot ×$MACHINES -o openmetrics" "$BIN" report --snapshot "$(echo "$DIR"/fleet/*.yaml | tr ' ' ,)" -o openmetrics --out /dev/null
ls -l "$DIR/fleet.json" 2>/dev/null | awk '{printf "fleet JSON: %.1f MiB\n", $5 / 1048576}'
echo "targets: live report <= 1 s and <= 200 MiB; $MACHINES snapshots (at 3,000 processes) <= 30 s"
