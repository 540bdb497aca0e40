# PaKD's two commands (see README.md):
#   make demo   the main job end to end on Fashion-MNIST (pakd demo): train, compress, build for host
#               and rpi4, verify rpi4 under qemu, bench here, write the report, print the summary
#   make test   the test suite (what CI runs)
# Both install what they need first: Debian packages (through apt-get, with sudo when not root),
# a virtual environment in .venv, torch==2.13.0 (CPU, pinned) and PaKD itself, built with
# scikit-build-core. Re-running skips every finished step.
#
# For developers (docs/development.md):
#   make test-fast  the tests not marked slow (the inner loop; make test runs them all)
#   make lint       ruff check, ruff format --check, clang-format --dry-run -Werror on the tracked
#                   C/C++ files, and mypy once pyproject.toml has a [tool.mypy] section (what CI runs)
#   make format     applies ruff check --fix, ruff format and clang-format
# The tools are pinned in the `lint` extra of pyproject.toml and installed into .venv by setup.

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# dataset-fashion-mnist: the real data; g++/cmake: the C++ core; the ARM cross compilers and
# qemu-user: ARM builds verified under emulation (pakd build, pakd verify); openssh-server: the
# "remote device" of the tests (a real sshd on 127.0.0.1); chromium: renders the report in its test
APT_PACKAGES := dataset-fashion-mnist g++ cmake g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user \
                openssh-server openssh-client chromium
# torch is installed first, pinned; the peers (onnxruntime, executorch==1.5.1: ABI-tied to this
# torch) come with PaKD's own dependencies in pyproject.toml.
TORCH       := torch==2.13.0
BUILD_DEPS  := "scikit-build-core>=0.10" "pybind11>=2.13" ninja
INSTALLED   := $(VENV)/.pakd-installed
NATIVE_SRC  := pyproject.toml CMakeLists.txt $(shell find csrc -type f 2>/dev/null)
# The C/C++ files clang-format checks: every tracked one (the fuzz corpus is binary .pakd files).
C_FILES      = $(shell git ls-files '*.c' '*.cc' '*.h' '*.hpp' '*.inc')

.PHONY: demo test test-fast lint format apt-deps setup

demo: setup
	$(VENV)/bin/pakd demo

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@echo "$(VENV)/bin/clang-format --dry-run -Werror <the $(words $(C_FILES)) tracked C/C++ files>"
	@$(VENV)/bin/clang-format --dry-run -Werror $(C_FILES)
	@if grep -q '^\[tool\.mypy\]' pyproject.toml; then echo "$(VENV)/bin/mypy"; $(VENV)/bin/mypy; \
	else echo "mypy: no [tool.mypy] section in pyproject.toml yet, skipped"; fi

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $(C_FILES)

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
	$(PY) -m pip install -q --no-build-isolation -e ".[test,lint]"
	touch $@
