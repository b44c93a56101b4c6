# WhaleMountain: `make run` starts the server with embedded defaults; `make test` runs
# everything CI runs.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/whalemountain

.PHONY: build run test vet lint fmt-check bench fuzz fuzz-short soak clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/whalemountain

run: build
	./$(BIN) serve

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck, pinned; `go run` builds it once into the build cache.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	$(GO) run $(STATICCHECK) ./...

# The Kubernetes tests need the test cluster's programs: WM_KUBE_BIN, else built (once, cached).
test: fmt-check vet lint build
	@bin="$${WM_KUBE_BIN:-}"; if [ -z "$$bin" ]; then bin=$$(.ci/kubetools/build) || exit 1; fi; \
	echo "WM_KUBE_BIN=$$bin"; \
	WM_KUBE_BIN="$$bin" $(GO) test -count=1 -p 1 -timeout 20m ./...
	$(MAKE) --no-print-directory fuzz-short

# Every parser of outside input has a fuzz target; its seeds run with the tests above, and
# each is fuzzed a little by `make test` (FUZZTIME) and for minutes by `make fuzz`.
FUZZ_TARGETS := FuzzParseRef:./backend/docker FuzzParseImage:./backend/docker FuzzLine:./tui/termsafe \
	FuzzResolve:./tui/files FuzzRewriteTar:./backend/sif FuzzConfigFile:./cmd/whalemountain \
	FuzzCheckCreate:./backend/docker FuzzScanDockerfile:./backend/docker FuzzParseFilters:./tui/dockerapi
FUZZTIME ?= 3s

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "fuzz $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/wm-fuzz.log 2>&1 || { cat /tmp/wm-fuzz.log; exit 1; }; \
	done

fuzz:
	$(MAKE) --no-print-directory fuzz-short FUZZTIME=2m

# The soak, not part of `make test`: SOAK_DASHBOARDS dashboards, SOAK_SHELLS shells streaming
# output, SOAK_TRANSFERS sftp clients and a stream of container changes on one server for
# SOAK_DURATION; prints errors (must be 0), the server's goroutines, descriptors and memory at
# the start and the end, and the p99 keystroke echo latency.
SOAK_DURATION   ?= 10m
SOAK_DASHBOARDS ?= 200
SOAK_SHELLS     ?= 20
SOAK_TRANSFERS  ?= 10

soak: build
	$(GO) test -tags soak -run '^TestSoak$$' -count 1 -v -timeout 90m ./cmd/whalemountain \
		-soak.duration $(SOAK_DURATION) -soak.dashboards $(SOAK_DASHBOARDS) \
		-soak.shells $(SOAK_SHELLS) -soak.transfers $(SOAK_TRANSFERS)

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./...

clean:
	rm -rf bin
