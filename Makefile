# Build, test and demo entry points. `make build` leaves ./bin/xdp-* runnable.
BPF_CC     ?= clang
ARCH_INC   := /usr/include/$(shell uname -m)-linux-gnu
BPF_CFLAGS := -O2 -g -target bpf -Wall -Wextra -Werror -Wno-unused-parameter \
              -I bpf/include -I bpf -I $(ARCH_INC)
BPF_OUT    := build/bpf
BPF_SRCS   := $(wildcard bpf/xdp_root/*.bpf.c bpf/subprogs/*/*.bpf.c bpf/fixtures/*.bpf.c)
BPF_OBJS   := $(patsubst %.bpf.c,$(BPF_OUT)/%.o,$(notdir $(BPF_SRCS)))
BPF_HDRS   := $(wildcard bpf/include/xdplb/*.h bpf/lib/*.h bpf/subprogs/*/*.h)
TS_SRCS    := $(shell find src -name '*.ts')

vpath %.bpf.c bpf/xdp_root $(wildcard bpf/subprogs/*) bpf/fixtures

.PHONY: all build bpf js deps test test-unit test-kernel test-net bench demo demo-fleet clean typecheck docs

all: build

build: bpf js

bpf: $(BPF_OBJS)

$(BPF_OUT)/%.o: %.bpf.c $(BPF_HDRS) | $(BPF_OUT)
	$(BPF_CC) $(BPF_CFLAGS) -c $< -o $@

$(BPF_OUT):
	mkdir -p $@

js: dist/.built

# The commands, then what is made from their tables: man pages, one unit
# per subprogram, bash completions (scripts/generate.mjs).
dist/.built: $(TS_SRCS) scripts/bundle.mjs scripts/generate.mjs systemd/xdplb-subprogram.service.in package.json node_modules/.package-lock.json
	node scripts/bundle.mjs
	node scripts/generate.mjs
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-fund --no-audit

typecheck:
	npx tsc --noEmit -p .

# Installs the Debian packages and npm modules everything below needs.
deps:
	bash scripts/deps.sh

# The tiers run one after another: kernel and net tests change kernel state.
# A skipped test fails the run (see scripts/test-summary.mjs).
TIERS := unit kernel net system
test: deps build typecheck
	@mkdir -p build/test-results
	@status=0; for t in $(TIERS); do \
	  npx vitest run --project $$t --reporter=default --reporter=json \
	    --outputFile.json=build/test-results/$$t.json || status=1; \
	done; \
	node scripts/test-summary.mjs $(TIERS:%=build/test-results/%.json) || status=1; \
	exit $$status

# Bundled inside the checkout so that koffi resolves from node_modules.
bench: deps build
	npx esbuild bench/run.ts --bundle --platform=node --format=esm --main-fields=module,main --external:koffi --log-level=warning --outfile=build/bench/run.mjs
	node build/bench/run.mjs

# README.md's list of metrics, from the collectors' declarations.
docs: js
	node scripts/generate.mjs docs

demo: deps build
	bash scripts/demo.sh

# Three balancers announcing VIPs over BGP (BIRD) to a router's ECMP route.
demo-fleet: deps build
	bash scripts/demo-fleet.sh

clean:
	rm -rf build dist
