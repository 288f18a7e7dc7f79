#!/usr/bin/env bash
# bench-verify.sh — procgate verify on the running kernel, this tree
# against a baseline commit, alternating, in one session: for each case
# count (default 3000 and 10000), RUNS runs of each build (default 3),
# with cases/s as verify reports it, CPU (user + sys) and maximum RSS, then
# the median cases/s of each and their ratio.
#
#   sudo scripts/bench-verify.sh [BASE] [RUNS] [N...]
#
# BASE is a commit (default HEAD~1). Both binaries are what a plain
# go build makes (cgo on, as make verify runs it). Needs root (verify
# spawns processes under other users) and GNU time (/usr/bin/time).
set -euo pipefail
BASE=${1:-HEAD~1}
RUNS=${2:-3}
shift 2 2>/dev/null || shift $#
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(3000 10000)
[ "$(id -u)" = 0 ] || { echo "bench-verify.sh: run as root" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench-verify.sh: needs GNU time (/usr/bin/time; apt-get install time)" >&2; exit 2; }
cd "$(dirname "$0")/.."
DIR=$(mktemp -d)
trap 'git worktree remove --force "$DIR/base" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
git worktree add -q --detach "$DIR/base" "$BASE"
(cd "$DIR/base" && go build -o "$DIR/procgate-base" ./cmd/procgate)
go build -o "$DIR/procgate-head" ./cmd/procgate
echo "base $(git rev-parse --short "$BASE"), head $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for n in "${NS[@]}"; do
	: >"$DIR/base.$n"
	: >"$DIR/head.$n"
	for r in $(seq "$RUNS"); do
		for b in base head; do
			out=$(/usr/bin/time -f 'TIME %U %S %M' "$DIR/procgate-$b" verify --cases "$n" --progress never 2>&1) || {
				echo "$out" | tail -20 >&2
				echo "bench-verify.sh: $b verify --cases $n failed" >&2
				exit 1
			}
			rate=$(echo "$out" | sed -n 's/^speed: .*, \([0-9]*\) cases\/s.*/\1/p')
			read -r u s m < <(echo "$out" | sed -n 's/^TIME //p')
			spawned=$(echo "$out" | sed -n 's/.*; \([0-9]*\) processes spawned.*/\1/p')
			printf '%-5s N=%-6s run %d: %5s cases/s  CPU %5.1f s  max RSS %4d MiB%s\n' \
				"$b" "$n" "$r" "$rate" "$(echo "$u + $s" | bc)" $((m / 1024)) "${spawned:+  $spawned processes}"
			echo "$rate" >>"$DIR/$b.$n"
		done
	done
	mb=$(median <"$DIR/base.$n")
	mh=$(median <"$DIR/head.$n")
	printf 'N=%s: median %s → %s cases/s (%.2f×)\n' "$n" "$mb" "$mh" "$(echo "$mh / $mb" | bc -l)"
done
