# hashfed build. `make` (= `make check`) is what CI runs; `make demo` runs a local consortium.
MAKEFLAGS += --warn-undefined-variables
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -euc
.DEFAULT_GOAL := check

GO ?= go
# FUZZTIME is how long each fuzz target runs in `make fuzz-short` (part of check) and `make fuzz`.
FUZZTIME ?= 4s
FUZZTIME_LONG ?= 2m
# TESTFLAGS are extra flags for `go test` in `make test`.
TESTFLAGS ?=
BIN := $(CURDIR)/bin

.PHONY: check fmt-check vet staticcheck test test-norace nocgo fuzz-short fuzz proto proto-check tidy-check build bench-build demo bench clean

## check: everything CI runs
check: fmt-check vet staticcheck test test-norace nocgo fuzz-short proto-check tidy-check

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...

test:
	$(GO) test -race -timeout 20m $(TESTFLAGS) ./...

# test-norace runs the match index's tests once more without the race detector: only then does the
# index keep its large arrays in mapped huge pages outside the Go heap (the race detector cannot see
# such memory), so only this run exercises that path.
test-norace:
	$(GO) test -count=1 -timeout 10m ./store/pdqindex/

# nocgo checks that everything builds without cgo, where PDQ hashing decodes JPEGs with Go's
# image/jpeg instead of libjpeg-turbo, and that the PDQ tests (bit-exact on Go's pixels) pass so.
nocgo:
	CGO_ENABLED=0 $(GO) build ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./consortium/pdq/ ./internal/jpegturbo/

# fuzz-short runs every fuzz target (func FuzzX in *_test.go) for $(FUZZTIME).
fuzz-short:
	@./scripts/fuzz $(FUZZTIME)

## fuzz: every fuzz target for $(FUZZTIME_LONG)
fuzz:
	@./scripts/fuzz $(FUZZTIME_LONG)

$(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc: go.mod
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

## proto: regenerate the Go code from proto/hashfed/v1/*.proto
proto: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
	./scripts/genproto $(BIN) proto

# proto-check fails when the committed generated code differs from what the .proto files give.
proto-check: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	./scripts/genproto $(BIN) "$$tmp"; \
	if ! diff -r -I '^// 	protoc ' -I '^// - protoc ' "$$tmp/hashfed/v1" proto/hashfed/v1 --exclude='*.proto' --exclude=doc.go; then \
		echo "generated protobuf code is stale: run make proto"; exit 1; fi

tidy-check:
	@cp go.mod /tmp/hashfed-go.mod.bak; cp go.sum /tmp/hashfed-go.sum.bak; \
	$(GO) mod tidy; \
	if ! cmp -s go.mod /tmp/hashfed-go.mod.bak || ! cmp -s go.sum /tmp/hashfed-go.sum.bak; then \
		diff -u /tmp/hashfed-go.mod.bak go.mod || true; \
		cp /tmp/hashfed-go.mod.bak go.mod; cp /tmp/hashfed-go.sum.bak go.sum; \
		echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; fi

## build: the hashfed binary in bin/
build:
	$(GO) build -o $(BIN)/hashfed ./cmd/hashfed

## bench-build: the hashfed-bench binary in bin/ (benchmarks; it links the test keys of internal/fixture)
bench-build:
	$(GO) build -o $(BIN)/hashfed-bench ./cmd/hashfed-bench

## demo: a local consortium doing its whole story (three founders, a fourth admitted, an audit)
demo: build
	$(BIN)/hashfed demo

clean:
	rm -rf $(BIN)
