# logengine — the two commands a newcomer needs are `make run` and `make test`;
# `make` alone lists every target.
GO      ?= go
BIN     ?= bin/logengine
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# ROLE=gateway runs one role; unset, --role is left to LOGENGINE_ROLE, then its default (all)
ROLE    ?=
# ARGS are more flags for `logengine serve`, e.g. make run ARGS="--gateway-addr=:9080"
ARGS    ?=

.DEFAULT_GOAL := help
.PHONY: help run test build services check helm-check bench chaos abuse fuzz loadtest bench-e2e bench-consumers clean

## help: list the targets (what `make` alone does)
help:
	@echo 'usage: make <target> [VAR=value ...]'
	@echo
	@awk 'match($$0, /^## [a-z][a-z0-9-]*: /) { printf "  %-16s %s\n", substr($$0, 4, RLENGTH - 5), substr($$0, RLENGTH + 1) }' $(MAKEFILE_LIST)
	@echo
	@echo 'Every serve flag can also be set as LOGENGINE_<FLAG> (e.g. LOGENGINE_KAFKA_BROKERS); see README.md.'

## build: compile the logengine binary into bin/
build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) .

## services: make sure PostgreSQL and Redis answer on loopback
services:
	@bash .ci/services.sh

## run: the whole pipeline in one process (embedded Kafka); ARGS="--flag=value ..." adds serve flags
run: build services
	exec ./$(BIN) serve $(if $(ROLE),--role=$(ROLE)) $(ARGS)

## check: formatting, vet, and govulncheck when its database is reachable
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@GO=$(GO) bash .ci/vulncheck.sh

## test: every test, with the race detector, against the real PostgreSQL and Redis; and helm-check
test: services check helm-check
	$(GO) test -race -count=1 ./...

## helm-check: render the Helm chart (configs/helm/logengine) for its examples and validate every object
# A module of its own, so that Helm and the Kubernetes types stay out of
# logengine's dependencies; it builds logengine to check the chart's flags.
helm-check:
	cd configs/helm/check && $(GO) vet ./... && $(GO) test -count=1 ./...

## bench: the Go micro-benchmarks (benchstat-readable)
bench: services
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...

## chaos: the failure scenarios alone, one line each (they also run in make test)
chaos: services
	@out=$$(mktemp); $(GO) test -count=1 -run 'TestChaos' -v ./app/ > $$out 2>&1; status=$$?; \
	grep -o 'CHAOS .*' $$out || true; \
	if [ $$status -ne 0 ]; then cat $$out; fi; rm -f $$out; exit $$status

## abuse: the adversarial suite alone (TestAbuse*: bad bodies, stalled uploads, edge input; also in make test)
abuse: services
	@out=$$(mktemp); $(GO) test -count=1 -run '^TestAbuse' -v ./... > $$out 2>&1; status=$$?; \
	grep -E '^(--- (PASS|FAIL)|ok |FAIL)|ABUSE ' $$out | grep -v 'no tests to run' || true; \
	if [ $$status -ne 0 ]; then cat $$out; fi; rm -f $$out; exit $$status

## fuzz: every Fuzz* function of the module, each for FUZZTIME (30s); their seed corpora also run in make test
# Found with go test -list in each package that has tests, so a new fuzz
# target is fuzzed without being named here.
FUZZTIME ?= 30s
fuzz: services
	@set -e; for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
		for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

## bench-e2e: storage benchmark: a week of logs through the pipeline, 8 uncached queries, bytes per log (LOGS=2000000)
# Starts serve --role=all on a fresh database (a retention of 8 days, so the week of logs
# is neither refused nor dropped while measured), runs logengine bench against it and stops it.
LOGS     ?= 2000000
BENCH_DB ?= postgres://postgres@127.0.0.1:5432/logengine_bench?sslmode=disable
bench-e2e: build services
	@psql -h 127.0.0.1 -U postgres -qc 'DROP DATABASE IF EXISTS logengine_bench WITH (FORCE)' >/dev/null 2>&1 || true
	@log=$$(mktemp); ./$(BIN) serve --role=all --postgres-url='$(BENCH_DB)' --cache-prefix=logengine-bench: --log-level=warn --retention=8d $(ARGS) > $$log 2>&1 & pid=$$!; \
	for i in $$(seq 1 60); do curl -sf http://127.0.0.1:8080/readyz >/dev/null && curl -sf http://127.0.0.1:8082/readyz >/dev/null && break; sleep 1; done; \
	./$(BIN) bench --logs=$(LOGS) --postgres-url='$(BENCH_DB)' --server-pid=$$pid; status=$$?; \
	kill -TERM $$pid; wait $$pid; \
	if [ $$status -ne 0 ]; then tail -20 $$log; fi; rm -f $$log; exit $$status

## bench-consumers: stored logs/s and CPU with 1, 2 and 3 consumer processes on one broker (LOGS=2000000 CONSUMERS=1,2,3)
# For each count: a fresh database (logengine_bench_consumers_<count>), a producer process
# with the embedded broker takes LOGS logs, then the consumers start at once and are timed
# until PostgreSQL holds them all; processes, databases and cache keys are removed after.
CONSUMERS ?= 1,2,3
bench-consumers: build services
	./$(BIN) bench consumers --logs=$(LOGS) --consumers=$(CONSUMERS) $(foreach a,$(ARGS),--serve-flag=$(a))

## loadtest: 60 s of load against a fresh whole pipeline, then its report (LOADTEST_FLAGS=...)
# Starts serve --role=all on a fresh database, loads it with logs and queries, prints
# the report and stops it; LOADTEST_FLAGS="--rate=10000" adds loadtest flags.
LOADTEST_FLAGS ?= --rate=0 --duration=60s --batch-size=100 --concurrency=4 --query-rate=10 --verify-timeout=5m
LOADTEST_DB    ?= postgres://postgres@127.0.0.1:5432/logengine_loadtest?sslmode=disable
loadtest: build services
	@psql -h 127.0.0.1 -U postgres -qc 'DROP DATABASE IF EXISTS logengine_loadtest WITH (FORCE)' >/dev/null 2>&1 || true
	@log=$$(mktemp); ./$(BIN) serve --role=all --postgres-url='$(LOADTEST_DB)' --cache-prefix=logengine-loadtest: --log-level=warn > $$log 2>&1 & pid=$$!; \
	for i in $$(seq 1 60); do curl -sf http://127.0.0.1:8080/readyz >/dev/null && curl -sf http://127.0.0.1:8082/readyz >/dev/null && break; sleep 1; done; \
	./$(BIN) loadtest $(LOADTEST_FLAGS) --server-pid=$$pid; status=$$?; \
	kill -TERM $$pid; wait $$pid; \
	if [ $$status -ne 0 ]; then tail -20 $$log; fi; rm -f $$log; exit $$status

## clean: remove bin/
clean:
	rm -rf bin
