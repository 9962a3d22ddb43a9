# `make demo` and `make test` install what is missing, then run. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
DEBIAN_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm

.PHONY: demo test bench bench-codec bench-kernels bench-harness bench-host bench-streaming bench-micropython bench-labgrid nnom cmsis micropython toolchain browser venv clean

demo: venv toolchain
	$(BIN)/semhil demo

test: venv toolchain browser
	$(BIN)/python -m pytest

bench: venv toolchain
	$(BIN)/python bench/run.py

bench-codec: venv
	$(BIN)/python bench/codec.py

bench-harness: venv toolchain
	$(BIN)/python bench/harness.py

bench-host: venv
	$(BIN)/python bench/scoring.py

bench-streaming: venv toolchain
	$(BIN)/python bench/streaming.py

bench-micropython: venv toolchain
	$(BIN)/python bench/micropython.py

bench-labgrid: venv toolchain
	$(BIN)/python bench/labgrid_places.py

bench-kernels: venv toolchain
	$(BIN)/semhil bench kernels

# NNoM for the nnom backend: cloned (network needed) outside this repository at the pinned commit.
NNOM_DIR ?= $(HOME)/.cache/semhil/nnom
NNOM_COMMIT := $(shell sed -n 's/^NNOM_PIN = "\([0-9a-f]*\)".*/\1/p' host/semhil/build.py)
nnom:
	@[ -d "$(NNOM_DIR)/.git" ] || git clone --quiet https://github.com/majianjia/nnom "$(NNOM_DIR)"
	git -C "$(NNOM_DIR)" -c advice.detachedHead=false checkout --quiet $(NNOM_COMMIT) || \
	  (git -C "$(NNOM_DIR)" fetch --quiet origin && git -C "$(NNOM_DIR)" -c advice.detachedHead=false checkout --quiet $(NNOM_COMMIT))
	@echo "NNoM $(NNOM_COMMIT) is in $(NNOM_DIR); now: export NNOM_HOME=$(NNOM_DIR)"

# CMSIS_5 for the cmsis-nn backend (a peer for `semhil bench kernels`): a shallow clone (network needed) of tag 5.9.0
# outside this repository; the build compiles the few CMSIS-NN sources it needs from there.
CMSIS_DIR ?= $(HOME)/.cache/semhil/cmsis_5
CMSIS_TAG := $(shell sed -n 's/^CMSIS_TAG, CMSIS_PIN = "\([0-9.]*\)".*/\1/p' host/semhil/build.py)
cmsis:
	@[ -d "$(CMSIS_DIR)/.git" ] || git clone --quiet --depth 1 --branch $(CMSIS_TAG) https://github.com/ARM-software/CMSIS_5 "$(CMSIS_DIR)"
	@echo "CMSIS_5 $(CMSIS_TAG) ($$(git -C "$(CMSIS_DIR)" rev-parse --short=12 HEAD)) is in $(CMSIS_DIR); now: export CMSIS_HOME=$(CMSIS_DIR)"

# MicroPython for the micropython-* boards: cloned (network needed, no submodules) outside this repository at the
# pinned commit; semhil builds its unix and QEMU ports out of tree, in ~/.cache/semhil/micropython-builds.
MICROPY_DIR ?= $(HOME)/.cache/semhil/micropython
MICROPY_COMMIT := $(shell sed -n 's/^MICROPY_PIN = "\([0-9a-f]*\)".*/\1/p' host/semhil/micropython/home.py)
micropython:
	@[ -d "$(MICROPY_DIR)/.git" ] || git clone --quiet https://github.com/micropython/micropython "$(MICROPY_DIR)"
	git -C "$(MICROPY_DIR)" -c advice.detachedHead=false checkout --quiet $(MICROPY_COMMIT) || \
	  (git -C "$(MICROPY_DIR)" fetch --quiet origin && git -C "$(MICROPY_DIR)" -c advice.detachedHead=false checkout --quiet $(MICROPY_COMMIT))
	@echo "MicroPython $(MICROPY_COMMIT) is in $(MICROPY_DIR); now: export MICROPY_HOME=$(MICROPY_DIR)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

# The Debian toolchain (and ser2net, which labgrid's exporter serves serial ports with): installed with
# apt-get when missing and we are root; otherwise says how.
toolchain:
	@missing=""; \
	command -v arm-none-eabi-gcc >/dev/null || missing="$$missing gcc-arm-none-eabi"; \
	[ -f /usr/lib/arm-none-eabi/newlib/libc_nano.a ] || missing="$$missing libnewlib-arm-none-eabi"; \
	command -v qemu-system-arm >/dev/null || missing="$$missing qemu-system-arm"; \
	[ -x /usr/sbin/ser2net ] || command -v ser2net >/dev/null || missing="$$missing ser2net"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "error: missing Debian packages:$$missing. Install them as root: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

# Debian's chromium: the tests render `semhil report`'s HTML page with it (headless).
browser:
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "error: missing Debian package: chromium (the tests render the report page with it). Install it as root: sudo apt-get install chromium" >&2; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) runs .pytest_cache
