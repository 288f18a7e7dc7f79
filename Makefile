# procgate — the two set-up commands are `make run` and `make test`.
#
#   make run    build procgate and run its main job: the broker with its
#               embedded default policy (as root, or through sudo)
#   make test   everything CI runs: format, vet, staticcheck, unit and
#               property tests (race detector on), fuzz seed corpora, the
#               kernel verification (as root: the running kernel, and
#               Debian's kernels under qemu), and a benchmark smoke run

SHELL        := /bin/bash
GO           ?= go
GOBIN        := $(shell $(GO) env GOPATH)/bin
STATICCHECK  := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
BIN          := bin/procgate
PKGS         := ./...
# Every package runs under the race detector (a cgo build, as a plain go
# build or go install makes); the oracle, the verifier, the VM verifier
# and the command run again in a static build (CGO_ENABLED=0, what make
# build makes), where the oracle's speed tests (//go:build !race) run
# too: both builds are tested.
STATIC_PKGS  := ./oracle/ ./verify/ ./vm/ ./cmd/procgate/

.PHONY: run build test deps tools fmt-check vet staticcheck unit race bench-smoke bench-engines fuzz-seeds verify verify-vm kernels-md bpf help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/procgate, statically linked (CGO_ENABLED=0: one file to copy into a container; a plain go build does the same job)
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/procgate

run: build ## run the main job: the broker (procgate serve) with its embedded default policy (root)
	@if [ "$$(id -u)" = 0 ]; then exec ./$(BIN) serve --audit-log -; else exec sudo ./$(BIN) serve --audit-log -; fi

# The FUSE tests run unmodified tools against procgate mount; fusermount3
# (fuse3) unmounts where a direct unmount cannot; BenchmarkRead builds
# its C floor with libfuse3-dev.
DEPS := fusermount3:fuse3 ps:procps top:procps lsof:lsof setpriv:util-linux unshare:util-linux chromium:chromium \
	cc:gcc pkg-config:pkg-config /usr/include/fuse3/fuse_lowlevel.h:libfuse3-dev

# missing sets the shell variable missing to the packages of the
# COMMAND:PACKAGE (or /PATH:PACKAGE) pairs in $(1) whose command is not
# on PATH (or whose file does not exist).
missing = missing=""; for d in $(1); do \
		case $${d%%:*} in /*) [ -e $${d%%:*} ] ;; *) command -v $${d%%:*} >/dev/null 2>&1 ;; esac || missing="$$missing $${d\#*:}"; done

deps: ## install the packages the tests run (fuse3, procps, lsof, util-linux, chromium, libfuse3-dev) when missing (apt-get, as root)
	@$(call missing,$(DEPS)); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "deps: missing$$missing: install them (apt-get install$$missing) or run as root"; exit 0; fi; \
		echo "deps: installing$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; }; \
	fi

tools: ## install the pinned static checker
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet $(PKGS)

staticcheck: tools ## staticcheck
	$(STATICCHECK) $(PKGS)

unit: deps ## unit, table, property and fuzz-seed tests, race detector on; kernel oracle and daemon tests as root; the static build too
	$(GO) test -race -count=1 -timeout 30m $(PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 $(STATIC_PKGS)

# The kernel verification needs root (CI runs as root); without it the
# targets say so loudly and do not count as run.
SKIP_NOT_ROOT = echo "!!!!!!!! SKIPPED: $@ needs root (CI runs as root); it did NOT run !!!!!!!!"

# verify runs the binary a plain go build makes (cgo on where a C compiler
# exists, dynamically linked), as a user's go build or go install would;
# the unit pass runs the oracle in a static build too.
verify: ## the model against the running kernel: 10,000 real cases (root), binary from a plain go build
	@if [ "$$(id -u)" != 0 ]; then $(SKIP_NOT_ROOT); exit 0; fi; \
	$(GO) build -o bin/procgate-default ./cmd/procgate && \
	./bin/procgate-default verify --cases $(VERIFY_CASES) --progress never

VERIFY_CASES ?= 10000

# The Debian releases whose linux-image-amd64 verify-vm boots (a list, or
# all = bullseye,bookworm,bookworm-backports,trixie).
VM_RELEASES ?= all

verify-vm: ## the model against Debian's kernels under qemu (VM_RELEASES): Yama 0-3, AppArmor, SELinux, release-dependent rules (root)
	@if [ "$$(id -u)" != 0 ]; then $(SKIP_NOT_ROOT); exit 0; fi; \
	scripts/vm-verify.sh --release $(VM_RELEASES) --kernels-md .cache/vm/kernels.md

bpf: ## regenerate bpflsm's BPF objects from bpflsm/c (clang, llvm, libbpf-dev; installed here when missing, as root): only after changing the C
	@$(call missing,clang:clang llvm-strip:llvm /usr/include/bpf/bpf_helpers.h:libbpf-dev); \
	if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; fi
	cd bpflsm && $(GO) generate ./

kernels-md: ## regenerate docs/kernels.md from the last verify-vm run of each kernel (.cache/vm/KERNEL/summary.json)
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/procgate && ./$(BIN) verify-vm --work .cache/vm --kernels-md docs/kernels.md

bench-smoke: ## every benchmark once, to keep them compiling and running
	$(GO) test -run '^$$' -bench . -benchtime 1x -benchmem $(PKGS)

bench-engines: ## the policy engine against OPA/Rego and CEL, side by side (separate module)
	cd bench/engines && $(GO) vet ./... && $(GO) test -count=1 -run 'TestEnginesAgree|TestRatios' -v .

test: fmt-check vet staticcheck unit verify verify-vm bench-smoke bench-engines ## everything CI runs
