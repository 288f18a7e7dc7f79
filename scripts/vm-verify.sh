#!/usr/bin/env bash
# Verify the model against a second kernel: Debian bookworm's
# linux-image-amd64 (6.1), booted under qemu with software emulation (TCG),
# with procgate itself as init. It boots twice: the Yama (scopes 0-3) and
# AppArmor cases, then the SELinux cases with a small policy compiled here
# by checkpolicy; it compares every answer with the model (procgate
# verify-vm).
#
# Usage: scripts/vm-verify.sh [--fetch-only] [procgate verify-vm flags...]
#
# Needs root (apt-get). Installs qemu-system-x86 and checkpolicy, downloads the kernel and
# apparmor packages into the cache (default .cache/vm, or $PROCGATE_VM_CACHE)
# and reuses them on later runs. Exit status: 0 when every case agrees with
# the model, 1 on a disagreement or a refused case, 2 on a setup error.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${PROCGATE_VM_CACHE:-.cache/vm}
debs=$cache/debs
fetch_only=0
if [[ ${1:-} == --fetch-only ]]; then
	fetch_only=1
	shift
fi
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if [[ $(id -u) != 0 ]]; then
	echo "vm-verify: needs root (apt-get install, apt-get download)" >&2
	exit 2
fi

log() { printf 'vm-verify: %s\n' "$*" >&2; }


# apt-get update only when the package lists cannot serve what we need.
have_candidate() { apt-cache policy "$1" 2>/dev/null | grep 'Candidate: [^(]' >/dev/null; } # not grep -q: pipefail and SIGPIPE
if ! have_candidate qemu-system-x86 || ! have_candidate linux-image-amd64 || ! have_candidate apparmor || ! have_candidate checkpolicy; then
	log "apt-get update"
	apt-get update -qq
fi
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
	log "installing qemu-system-x86"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
fi
if ! command -v checkpolicy >/dev/null 2>&1; then
	log "installing checkpolicy"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends checkpolicy >/dev/null
fi

# The kernel image package that linux-image-amd64 points to, e.g.
# linux-image-6.1.0-41-amd64.
image=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [[ -z $image ]]; then
	log "cannot resolve linux-image-amd64's kernel package"
	exit 2
fi

# fetch PACKAGE: print the cached .deb's path, downloading it when the
# candidate version is not cached yet.
fetch() {
	local pkg=$1 file
	file=$(apt-get download --print-uris "$pkg" 2>/dev/null | awk '{print $2; exit}')
	if [[ -z $file ]]; then
		apt-get update -qq
		file=$(apt-get download --print-uris "$pkg" | awk '{print $2; exit}')
	fi
	if [[ ! -s $debs/$file ]]; then
		log "downloading $file"
		(cd "$debs" && apt-get download -qq "$pkg" 2>&1 | grep -v 'unsandboxed as root' >&2 || true)
		[[ -s $debs/$file ]] || { log "download of $pkg failed"; exit 2; }
	fi
	printf '%s\n' "$debs/$file"
}
mkdir -p "$debs"
kdeb=$(fetch "$image")
adeb=$(fetch apparmor)
log "packages ready after ${SECONDS} s: $kdeb $adeb"
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
exec bin/procgate verify-vm --kernel-deb "$kdeb" --apparmor-deb "$adeb" --work "$cache" "$@"
