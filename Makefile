# logengine — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/logengine
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
ROLE    ?= all

.PHONY: run test build services check bench chaos clean

## build: compile the logengine binary into bin/
build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) .

## services: make sure PostgreSQL and Redis answer on loopback
services:
	@bash .ci/services.sh

## run: the whole pipeline in one process (embedded Kafka, local PostgreSQL and Redis)
run: build services
	./$(BIN) serve --role=$(ROLE)

## check: formatting and vet
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...

## test: every test, with the race detector, against the real PostgreSQL and Redis
test: services check
	$(GO) test -race -count=1 ./...

## bench: the Go micro-benchmarks (benchstat-readable)
bench: services
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...

## chaos: the failure scenarios alone, one line each (they also run in make test)
chaos: services
	@out=$$(mktemp); $(GO) test -count=1 -run 'TestChaos' -v ./app/ > $$out 2>&1; status=$$?; \
	grep -o 'CHAOS .*' $$out || true; \
	if [ $$status -ne 0 ]; then cat $$out; fi; rm -f $$out; exit $$status

clean:
	rm -rf bin
