# logengine — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     ?= bin/logengine
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
ROLE    ?= all

.PHONY: run test build services check bench chaos loadtest bench-store clean

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

## bench-store: storage at scale: ROWS logs over 7 days in a scratch database
## (logengine_bench, dropped after); query latency, ingest rate, bytes per log
ROWS ?= 1000000
bench-store: services
	$(GO) run ./store/benchstore -rows=$(ROWS)

## loadtest: start the whole pipeline on a fresh database, load it for 60 s with queries,
## print the report and stop it; LOADTEST_FLAGS="--rate=10000" adds loadtest flags
LOADTEST_FLAGS ?= --rate=0 --duration=60s --batch-size=100 --concurrency=4 --query-rate=10 --verify-timeout=5m
LOADTEST_DB    ?= postgres://postgres@127.0.0.1:5432/logengine_loadtest?sslmode=disable
loadtest: build services
	@psql -h 127.0.0.1 -U postgres -qc 'DROP DATABASE IF EXISTS logengine_loadtest WITH (FORCE)' >/dev/null 2>&1 || true
	@log=$$(mktemp); ./$(BIN) serve --role=all --postgres-url='$(LOADTEST_DB)' --cache-prefix=logengine-loadtest: --log-level=warn > $$log 2>&1 & pid=$$!; \
	for i in $$(seq 1 60); do curl -sf http://127.0.0.1:8080/readyz >/dev/null && curl -sf http://127.0.0.1:8082/readyz >/dev/null && break; sleep 1; done; \
	./$(BIN) loadtest $(LOADTEST_FLAGS) --server-pid=$$pid; status=$$?; \
	kill -TERM $$pid; wait $$pid; \
	if [ $$status -ne 0 ]; then tail -20 $$log; fi; rm -f $$log; exit $$status

clean:
	rm -rf bin
