#!/usr/bin/env bash
# Verify the model against Debian's kernels: linux-image-amd64 from
# bullseye (5.10), bookworm (6.1), bookworm-backports (6.12, an older
# stable release than trixie's) and trixie (6.12), each booted under qemu
# with software emulation (TCG), with procgate itself as init. Each kernel
# boots twice: the Yama (scopes 0-3), AppArmor and feature cases, then the
# SELinux cases with a small policy compiled here by checkpolicy; procgate
# verify-vm compares every answer with the model and prints one summary
# line per kernel.
#
# Usage: scripts/vm-verify.sh [--fetch-only] [--release LIST] [procgate verify-vm flags...]
#
# LIST is a comma-separated list of bullseye, bookworm, bookworm-backports,
# trixie, or all (default: $PROCGATE_VM_RELEASES, else all).
#
# Needs root (apt-get). Installs qemu-system-x86 and checkpolicy with the
# host's apt. The kernel and apparmor packages come from a private apt
# configuration per release under the cache (default .cache/vm, or
# $PROCGATE_VM_CACHE): CACHE/apt/RELEASE/ holds its own sources.list,
# package lists and downloaded archives, so the host's package sources are
# never read or changed for them, and downloads are reused by later runs.
# Exit status: 0 when every case of every kernel agrees with the model, 1
# on a disagreement, a refused case or too few cases, 2 on a setup error.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${PROCGATE_VM_CACHE:-.cache/vm}
releases=${PROCGATE_VM_RELEASES:-all}
all_releases=(bullseye bookworm bookworm-backports trixie)
fetch_only=0
args=()
while (($#)); do
	case $1 in
	--fetch-only) fetch_only=1 ;;
	--release | --releases)
		releases=${2:?--release needs a list}
		shift
		;;
	--release=* | --releases=*) releases=${1#*=} ;;
	*) args+=("$1") ;;
	esac
	shift
done
if [[ $releases == all ]]; then
	releases=$(
		IFS=,
		echo "${all_releases[*]}"
	)
fi
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if [[ $(id -u) != 0 ]]; then
	echo "vm-verify: needs root (apt-get install, apt-get download)" >&2
	exit 2
fi

log() { printf 'vm-verify: %s\n' "$*" >&2; }

# The tools run on the host: installed with the host's apt, which is
# updated only when its lists cannot serve them.
have_candidate() { apt-cache policy "$1" 2>/dev/null | grep 'Candidate: [^(]' >/dev/null; } # not grep -q: pipefail and SIGPIPE
need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v checkpolicy >/dev/null 2>&1 || need+=(checkpolicy)
if ((${#need[@]})); then
	for p in "${need[@]}"; do
		if ! have_candidate "$p"; then
			log "apt-get update (host lists, for ${need[*]})"
			apt-get update -qq
			break
		fi
	done
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The private apt configuration of a release: its own sources.list (signed
# by the Debian archive keyring), preferences, package lists and archives
# under CACHE/apt/RELEASE. Only apt.conf.d (proxies) comes from the host.
mkdir -p "$cache"
acache=$(cd "$cache" && pwd) # apt takes relative Dir:: paths as relative to /etc/apt or /
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -s $keyring ]] || {
	log "$keyring is missing (package debian-archive-keyring)"
	exit 2
}
apt_dir() { printf '%s/apt/%s' "$acache" "$1"; }
apt_opts() {
	local d
	d=$(apt_dir "$1")
	printf '%s\n' -o "Dir::Etc::SourceList=$d/sources.list" -o "Dir::Etc::SourceParts=$d/sources.list.d" \
		-o "Dir::Etc::Preferences=$d/preferences" -o "Dir::Etc::PreferencesParts=$d/preferences.d" \
		-o "Dir::State=$d/state" -o "Dir::State::status=$d/state/status" -o "Dir::Cache=$d/cache" \
		-o "Dir::Cache::archives=$d/archives" -o APT::Sandbox::User=root -o Acquire::Languages=none \
		-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false
}
# private TOOL RELEASE ARGS...: apt-get or apt-cache with a release's
# private configuration.
private() {
	local tool=$1 r=$2
	shift 2
	local -a o
	mapfile -t o < <(apt_opts "$r")
	"$tool" "${o[@]}" "$@"
}
papt() { private apt-get "$@"; }
pcache() { private apt-cache "$@"; }
# sources RELEASE: the sources.list lines of a release (the suites its
# kernel comes from).
sources() {
	local r=$1 m=http://deb.debian.org/debian s=http://deb.debian.org/debian-security
	local sb="[signed-by=$keyring]"
	case $r in
	bookworm-backports) echo "deb $sb $m bookworm-backports main" ;;
	bullseye | bookworm | trixie)
		echo "deb $sb $m $r main"
		echo "deb $sb $m $r-updates main"
		echo "deb $sb $s $r-security main"
		;;
	*) return 1 ;;
	esac
}
setup_apt() {
	local r=$1 d
	d=$(apt_dir "$r")
	mkdir -p "$d/sources.list.d" "$d/preferences.d" "$d/state/lists/partial" "$d/cache/archives/partial" "$d/archives/partial"
	: >"$d/preferences"
	[[ -e $d/state/status ]] || : >"$d/state/status"
	local want
	want=$(sources "$r")
	if [[ ! -s $d/sources.list ]] || [[ $(cat "$d/sources.list") != "$want" ]]; then
		printf '%s\n' "$want" >"$d/sources.list"
		rm -f "$d/state/updated"
	fi
}
# update RELEASE: apt-get update with the private configuration, at most
# once a day unless forced.
update() {
	local r=$1 force=${2:-0} d
	d=$(apt_dir "$r")
	if ((!force)) && [[ -n $(find "$d/state/updated" -mmin -1440 2>/dev/null) ]]; then
		return 0
	fi
	log "apt-get update ($r, private lists in $d)"
	papt "$r" -qq update >&2
	touch "$d/state/updated"
}
# fetch RELEASE PACKAGE: print the path of the candidate's .deb in the
# release's archives, downloading it unless it is there already.
fetch() {
	local r=$1 pkg=$2 d file
	d=$(apt_dir "$r")
	file=$(papt "$r" download --print-uris "$pkg" 2>/dev/null | awk '{print $2; exit}')
	if [[ -z $file ]]; then
		update "$r" 1
		file=$(papt "$r" download --print-uris "$pkg" | awk '{print $2; exit}')
	fi
	if [[ ! -s $d/archives/$file ]]; then
		log "downloading $file ($r)"
		if ! (cd "$d/archives" && papt "$r" download -qq "$pkg" >&2); then
			# The lists may name a version the archive no longer has.
			update "$r" 1
			file=$(papt "$r" download --print-uris "$pkg" | awk '{print $2; exit}')
			(cd "$d/archives" && papt "$r" download -qq "$pkg" >&2) || true
		fi
		[[ -s $d/archives/$file ]] || {
			log "download of $pkg ($r) failed"
			exit 2
		}
	fi
	printf '%s\n' "$d/archives/$file"
}

kernel_flags=()
IFS=, read -ra rels <<<"$releases"
for r in "${rels[@]}"; do
	if ! sources "$r" >/dev/null; then
		log "unknown release $r (want ${all_releases[*]} or all)"
		exit 2
	fi
	setup_apt "$r"
	update "$r"
	# The kernel image package linux-image-amd64 points to, e.g.
	# linux-image-6.1.0-41-amd64.
	image=$(pcache "$r" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [[ -z $image ]]; then
		update "$r" 1
		image=$(pcache "$r" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
	[[ -n $image ]] || {
		log "cannot resolve linux-image-amd64's kernel package in $r"
		exit 2
	}
	kdeb=$(fetch "$r" "$image")
	kernel_flags+=(--kernel-deb "$r=$kdeb")
done
# apparmor_parser runs in the VM with this host's shared libraries, so it
# comes from the host's release (bookworm; its abi 3.0 policy loads on
# every kernel here), whatever kernel boots.
setup_apt bookworm
update bookworm
adeb=$(fetch bookworm apparmor)
log "packages ready after ${SECONDS} s: ${kernel_flags[*]} --apparmor-deb $adeb"
if ((fetch_only)); then
	exit 0
fi

# The verification binary is init. It is built as a user builds it: a plain
# go build, cgo on where a C compiler exists (Go's default), so it is
# dynamically linked and goes into the initramfs with its ELF interpreter
# and shared libraries; PROCGATE_VM_CGO=0 builds it static instead.
if [[ -n ${PROCGATE_VM_CGO:-} ]]; then
	CGO_ENABLED=$PROCGATE_VM_CGO go build -o bin/procgate ./cmd/procgate
else
	go build -o bin/procgate ./cmd/procgate
fi
log "init binary: $(file -b bin/procgate 2>/dev/null | cut -d, -f1-2,4 || echo bin/procgate)"
exec bin/procgate verify-vm --release "$releases" "${kernel_flags[@]}" --apparmor-deb "$adeb" --work "$cache" "${args[@]}"
