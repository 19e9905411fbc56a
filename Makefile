# Set-up and checks. `make demo` and `make test` install everything a fresh
# Debian/Ubuntu machine lacks (Debian packages, the virtualenv, the package)
# before they run; `make demo` only what the demo needs (no test tools).
#
# Packages whose maintainer scripts change the machine's boot or service
# configuration are never installed: kdump-tools (USE_KDUMP, crashkernel= in
# GRUB) and kexec-tools (LOAD_KEXEC: reboots go through kexec) are unpacked
# privately instead, without their scripts (mockfs/tools/debs.py), into
# ~/.cache/abi-harness/debs; the libraries their programs link are ordinary
# library packages and are installed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The demo needs the package alone; the tests add its [test] extra (pytest, drgn, ruff).
DEMO_STAMP := $(VENV)/.installed-demo
STAMP      := $(VENV)/.installed-test

# What the demo needs: FUSE (fusermount3, libfuse3) and mount(8).
DEMO_DEBS := fuse3 util-linux
# What the whole suite drives besides.
# kdump-config itself needs file, sysctl (procps), /lib/lsb/init-functions (sysvinit-utils)
# and busybox; the tests reboot machines with busybox's reboot -f, and boot one real
# kernel under QEMU (tests/oracle: recorded once, then cached).
TEST_DEBS := $(DEMO_DEBS) procps makedumpfile elfutils gdb gdb-multiarch file busybox-static sysvinit-utils \
  bsdextrautils qemu-system-x86
# Unpacked privately (no maintainer scripts); Debian's kernel is the one kexec loads.
PRIVATE_DEBS := kexec-tools kdump-tools linux-image-$(shell dpkg --print-architecture 2>/dev/null || echo amd64)
# The shared libraries of the privately unpacked programs (libxen* for kexec).
PRIVATE_LIBS = $(shell apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances $(PRIVATE_DEBS) 2>/dev/null | awk '/Depends: lib/ {print $$2}' | sort -u)

.PHONY: all install install-demo system-deps-demo system-deps-test private-debs venv demo test lint docs bench clean

all: test

define install_debs
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends$$missing; \
	fi
endef

system-deps-demo:
	$(call install_debs,$(DEMO_DEBS))

system-deps-test:
	$(call install_debs,$(TEST_DEBS) $(PRIVATE_LIBS))

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed ($(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP) $(DEMO_STAMP)

venv: $(STAMP)

private-debs: $(DEMO_STAMP)
	$(BIN)/python -m mockfs.tools.debs $(PRIVATE_DEBS)

install-demo: system-deps-demo $(DEMO_STAMP)

install: system-deps-test venv private-debs

demo: install-demo
	$(BIN)/abi-harness demo

lint: venv
	$(BIN)/ruff check .

docs: venv
	$(BIN)/abi-harness docs --readme README.md

test: install
	$(BIN)/ruff check .
	$(BIN)/abi-harness docs --check --readme README.md
	$(BIN)/pytest -n auto
	PYTHON=$(PYTHON) .ci/wheel-check

bench: install
	$(BIN)/python bench/bench_vmcore.py
	$(BIN)/python bench/bench_mock.py
	$(BIN)/python bench/bench_collector.py
	$(BIN)/python bench/bench_conform.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
