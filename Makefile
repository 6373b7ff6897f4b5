# leadtail: `make test` is what CI runs (through .ci/run); `make demo` shows it working.
GO        ?= go
PKGS      := ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN       := bin/leadtail

.PHONY: build test test-short lint fmt demo bench faults clean

build:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/leadtail

# The full suite: unit tests, and integration tests against throwaway
# PostgreSQL/MariaDB servers that the tests start themselves.
test: lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Unit tests only (no database servers).
test-short:
	$(GO) test -race -short -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# A throwaway PostgreSQL with a sample CRM, the fake Graph API and leadtail:
# scripted stage changes, and the events that reached "Meta".
demo:
	bash testdata/demo/demo.sh

# The fault-injection suite at full strength (about 3 minutes; `make test`
# runs it reduced): 10,000 changes and 50 SIGKILLs per source, database and
# Meta faults, poison rows, a broken state_dir; prints the summary table.
faults:
	LEADTAIL_FAULTS=full $(GO) test -race -count=1 -timeout 90m -run '^TestFaults$$' -v ./cmd/leadtail

# Every benchmark once, then one table of the figures against their goals
# (about 25 minutes; not part of test): micro benchmarks, then the whole
# pipeline against throwaway PostgreSQL/MariaDB servers and the fake Graph
# API. One figure: go run ./internal/benchtable -bench PostgresVsRecvlogical
bench:
	$(GO) run ./internal/benchtable
