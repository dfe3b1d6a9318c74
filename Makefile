# Build, test and demo entry points. `make build` leaves ./bin/xdp-* runnable.
BPF_CC     ?= clang
ARCH_INC   := /usr/include/$(shell uname -m)-linux-gnu
BPF_CFLAGS := -O2 -g -target bpf -Wall -Wextra -Werror -Wno-unused-parameter \
              -I bpf/include -I $(ARCH_INC)
BPF_OUT    := build/bpf
BPF_SRCS   := $(wildcard bpf/xdp_root/*.bpf.c bpf/subprogs/*.bpf.c bpf/fixtures/*.bpf.c)
BPF_OBJS   := $(patsubst %.bpf.c,$(BPF_OUT)/%.o,$(notdir $(BPF_SRCS)))
BPF_HDRS   := $(wildcard bpf/include/xdplb/*.h)
TS_SRCS    := $(shell find src -name '*.ts')

vpath %.bpf.c bpf/xdp_root bpf/subprogs bpf/fixtures

.PHONY: all build bpf js deps test test-unit test-kernel test-net bench demo clean typecheck

all: build

build: bpf js

bpf: $(BPF_OBJS)

$(BPF_OUT)/%.o: %.bpf.c $(BPF_HDRS) | $(BPF_OUT)
	$(BPF_CC) $(BPF_CFLAGS) -c $< -o $@

$(BPF_OUT):
	mkdir -p $@

js: dist/.built

dist/.built: $(TS_SRCS) scripts/bundle.mjs package.json node_modules/.package-lock.json
	node scripts/bundle.mjs
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-fund --no-audit

typecheck:
	npx tsc --noEmit -p .

# Installs the Debian packages and npm modules everything below needs.
deps:
	bash scripts/deps.sh

test: deps build typecheck
	npx vitest run --project unit
	npx vitest run --project kernel
	npx vitest run --project net

bench: deps build
	node --experimental-strip-types --no-warnings bench/run.ts

demo: deps build
	bash scripts/demo.sh

clean:
	rm -rf build dist
