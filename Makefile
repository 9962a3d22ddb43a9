# `make demo` and `make test` install what is missing, then run. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
DEBIAN_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm

.PHONY: demo test bench bench-codec toolchain venv clean

demo: venv toolchain
	$(BIN)/semhil demo

test: venv toolchain
	$(BIN)/python -m pytest

bench: venv toolchain
	$(BIN)/python bench/run.py

bench-codec: venv
	$(BIN)/python bench/codec.py

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

# The Debian toolchain: installed with apt-get when missing and we are root; otherwise says how.
toolchain:
	@missing=""; \
	command -v arm-none-eabi-gcc >/dev/null || missing="$$missing gcc-arm-none-eabi"; \
	[ -f /usr/lib/arm-none-eabi/newlib/libc_nano.a ] || missing="$$missing libnewlib-arm-none-eabi"; \
	command -v qemu-system-arm >/dev/null || missing="$$missing qemu-system-arm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "error: missing Debian packages:$$missing. Install them as root: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) runs .pytest_cache
