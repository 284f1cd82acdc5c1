# Two commands matter: `make bench` (the suite on the emulated board with the synthetic data set)
# and `make test` (the project's own tests). Both run `make setup` first, which installs
# everything on a fresh Debian machine and finishes in seconds when there is nothing to do.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts nodejs make chromium chromium-driver
PYTEST_ARGS ?=
# GnuSpeech (one of the synthetic data set's text-to-speech engines) is an npm package run by node.
GNUSPEECH := harness/data/gnuspeech

export PLATFORMIO_CORE_DIR := $(CURDIR)/.cache/platformio
export PLATFORMIO_DISABLE_UPGRADE_CHECK := true
export PLATFORMIO_SETTING_ENABLE_TELEMETRY := No
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup apt venv npm test bench clean help

help:
	@echo "make bench   set up, then run the benchmark suites on the emulated board (synthetic data)"
	@echo "make test    set up, then run the project's own tests"
	@echo "make setup   install Debian packages, the pinned Python venv (.venv) and the pinned npm packages"

setup: apt venv npm

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "error: missing Debian packages:$$missing; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing" >&2; exit 1; \
	  fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The stamp is newer than requirements.txt and pyproject.toml once they are installed.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements.txt
	$(PIP) install -q --disable-pip-version-check --no-deps --force-reinstall $$(grep '^pyserial-labgrid==' requirements.txt)
	$(PIP) install -q --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# npm ships with nodesource's nodejs; Debian's own nodejs needs its npm package.
$(GNUSPEECH)/node_modules/.installed: $(GNUSPEECH)/package-lock.json | apt
	command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; }
	npm ci --prefix $(GNUSPEECH) --no-audit --no-fund --loglevel=error
	touch $@

npm: $(GNUSPEECH)/node_modules/.installed

test: setup
	$(PY) -m pytest tests/ $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest suites/ $(PYTEST_ARGS)

clean:
	rm -rf .cache firmware/.pio $(GNUSPEECH)/node_modules
