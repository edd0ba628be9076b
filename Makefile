# kubectl-ambient. The two commands a newcomer needs:
#   make demo   build, start the local lab cluster (when no cluster is configured), run the main job end to end
#   make test   install what the tests need, build the lab, lint, run every test (unit + lab integration)
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

MODULE  := github.com/kubectl-ambient/kubectl-ambient
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X $(MODULE)/pkg/version.Version=$(VERSION) -X $(MODULE)/pkg/version.Commit=$(COMMIT) \
           -X $(MODULE)/pkg/version.BuildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
CACHE   := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kubectl-ambient
TOOLS   := $(CACHE)/tools
GO_TEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: all build test unit lint deps lab demo release-check krew-manifest clean

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubectl-ambient ./cmd/kubectl-ambient
	cp kubectl_complete-ambient bin/

deps:
	hack/deps.sh

lab:
	hack/lab/build.sh

lint: deps
	$(TOOLS)/golangci-lint run --allow-parallel-runners ./...

# Every test: unit tests and the integration tests against the lab (the lab's
# binaries are built first, once; tests start and stop their own lab). The
# tests run the plugin binary built here (KAMB_BIN) instead of each building
# its own copy while its deadlines run.
test: deps lab build
	go vet ./...
	$(TOOLS)/golangci-lint run --allow-parallel-runners ./...
	KAMB_BIN=$(CURDIR)/bin/kubectl-ambient go test $(GO_TEST_FLAGS) ./...

# Unit tests only: no lab, no root.
unit:
	go test -short -count=1 ./...

demo: deps lab build
	hack/demo.sh

# Slow release checks, kept out of per-change CI: cross-builds for six
# platforms and the krew manifest generated from them.
release-check:
	hack/release-check.sh

clean:
	rm -rf bin dist
