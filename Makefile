# PaKD's two commands (see README.md):
#   make demo   the main job end to end on Fashion-MNIST (pakd demo): train, compress, build for host
#               and rpi4, verify rpi4 under qemu, bench here, write the report, print the summary
#   make test   the test suite (what CI runs)
# Both install what they need first: Debian packages (through apt-get, with sudo when not root),
# a virtual environment in .venv, torch==2.13.0 (CPU, pinned) and PaKD itself, built with
# scikit-build-core. Re-running skips every finished step.

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# dataset-fashion-mnist: the real data; g++/cmake: the C++ core; the ARM cross compilers and
# qemu-user: ARM builds verified under emulation (pakd build, pakd verify); openssh-server: the
# "remote device" of the tests (a real sshd on 127.0.0.1); chromium: renders the report in its test
APT_PACKAGES := dataset-fashion-mnist g++ cmake g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user \
                openssh-server openssh-client chromium
TORCH       := torch==2.13.0
BUILD_DEPS  := "scikit-build-core>=0.10" "pybind11>=2.13" ninja
INSTALLED   := $(VENV)/.pakd-installed
NATIVE_SRC  := pyproject.toml CMakeLists.txt $(shell find csrc -type f 2>/dev/null)

.PHONY: demo test apt-deps setup

demo: setup
	$(VENV)/bin/pakd demo

test: setup
	$(PY) -m pytest

setup: apt-deps $(INSTALLED)

# Installs only the Debian packages that are missing (python3-venv too, when venv/ensurepip is).
apt-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)

# Rebuilt when the native sources or the project metadata change.
$(INSTALLED): $(PY) $(NATIVE_SRC)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q $(BUILD_DEPS)
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	touch $@
