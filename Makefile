# Set-up and checks. `make demo` and `make test` install everything a fresh
# Debian/Ubuntu machine lacks (Debian packages, the virtualenv, the package)
# before they run.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Debian packages the harness and its tests drive.
DEBS := fuse3 util-linux procps kexec-tools makedumpfile elfutils gdb gdb-multiarch kdump-tools

.PHONY: all install system-deps venv demo test lint docs bench clean

all: test

system-deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends$$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed ($(PYTHON))"; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

install: system-deps venv

demo: install
	$(BIN)/abi-harness demo

lint: venv
	$(BIN)/ruff check .

docs: venv
	$(BIN)/abi-harness docs

test: install
	$(BIN)/ruff check .
	$(BIN)/abi-harness docs --check
	$(BIN)/pytest -n auto

bench: install
	$(BIN)/python bench/bench_vmcore.py
	$(BIN)/python bench/bench_mock.py
	$(BIN)/python bench/bench_collector.py
	$(BIN)/python bench/bench_conform.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
