# runc-shared: `make` builds, `make demo` shows the main job, `make test` runs
# every test (as root, on Debian: missing packages are installed first).

PREFIX   ?= /usr/local
DESTDIR  ?=

GO       ?= go
COMMIT   := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/runc-shared/runc-shared/internal/version.Commit=$(COMMIT)
# grpcnotrace leaves gRPC's request tracing (golang.org/x/net/trace, which
# pulls in html/template) out of `mounter`: nothing here enables it, and
# every `mounter mount` would pay the start-up of those packages.
GOTAGS   := grpcnotrace
GOBUILD  := CGO_ENABLED=0 $(GO) build -trimpath -tags '$(GOTAGS)' -ldflags '$(LDFLAGS)'
GOFILES  := $(shell find . -name '*.go' -not -path './.git/*')

# Fuzz time per target: 30 s in `make fuzz`, a few seconds in `make test`.
FUZZTIME ?= 30s

.PHONY: all build deps test unit e2e lint fuzz demo bench install uninstall clean

all: build

build: bin/runc-shared bin/mount-hook bin/mounter bin/libhostmount.so

bin/runc-shared bin/mount-hook bin/mounter: bin/%: $(GOFILES) go.mod go.sum
	$(GOBUILD) -o $@ ./cmd/$*

bin/libhostmount.so: $(wildcard preload/*.c preload/*.h) preload/Makefile
	$(MAKE) -C preload OUT=$(abspath bin) all

# deps installs the Debian packages the tests and the demo use, when missing.
deps:
	scripts/deps.sh base gluster engines

# lint: gofmt, go vet, staticcheck, errorlint and the truncating-write ban.
lint:
	GO=$(GO) scripts/lint.sh

# fuzz runs every fuzz target for FUZZTIME each (make fuzz FUZZTIME=5m for longer).
fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME)

# End-to-end packages drive real runc, engines and glusterd (one glusterd on
# 127.0.0.2 at a time) and share the host's mount table: they run one package
# at a time, after the unit tests.
E2E_PKGS = ./tests/... ./internal/testutil

unit: build
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /tests/ -e /internal/testutil)
	$(MAKE) -C preload OUT=$(abspath bin) test

e2e: build
	$(GO) test -count=1 -p 1 -timeout 30m $(E2E_PKGS)

# make test fuzzes each target for a few seconds; make fuzz for 30 s.
test: FUZZTIME = 3s
test: deps lint unit fuzz e2e

demo: deps build
	scripts/demo.sh

# demo-csi: a GlusterFS volume created, staged, published and deleted through
# `mounter csi` running in a mounter container.
.PHONY: demo-csi
demo-csi: deps build
	scripts/demo-csi.sh

# bench measures each scenario against its reference (root, about
# 8 minutes; not part of `make test`); table in bin/bench/table.md, method and
# latest results in docs/benchmarks.md.
# BENCH_ARGS passes flags to the scenarios (see scripts/bench.sh).
bench: deps build
	scripts/deps.sh bench
	GO=$(GO) scripts/bench.sh

install: build
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' scripts/install.sh install

# uninstall refuses while registered mounters run or are paused (FORCE=1 skips
# the check); see scripts/install.sh.
uninstall:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' FORCE='$(FORCE)' scripts/install.sh uninstall

clean:
	rm -rf bin
	$(MAKE) -C preload OUT=$(abspath bin) clean
