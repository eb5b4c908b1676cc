# Two entry points: `make run` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/gateway.toml

# Debian packages: the T.30 engine for the loopback line; fonts for text in every script (DejaVu
# for Latin, Greek, Cyrillic, Hebrew and Arabic, Noto CJK for Chinese, Japanese and Korean), found
# through fontconfig; LibreOffice headless for Office documents; and the tools the tests read
# back with.
OFFICE_DEBS := libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui
FONT_DEBS := fontconfig fonts-dejavu-core fonts-noto-cjk
RUN_DEBS := libspandsp2 $(FONT_DEBS) $(OFFICE_DEBS)
# postfix: the relay test runs a private instance of its own (installed "No configuration", so
# the system's Postfix is neither configured nor started);
# systemd: systemd-analyze and systemd-sysusers check the unit file offline.
# postgresql: the PostgreSQL store's tests run a private cluster (initdb in a temporary directory);
# chromium and chromium-driver: the console's browser tests.
OCR_DEBS := tesseract-ocr tesseract-ocr-eng tesseract-ocr-jpn tesseract-ocr-chi-sim \
	tesseract-ocr-rus tesseract-ocr-heb
TEST_DEBS := libspandsp2 $(FONT_DEBS) $(OFFICE_DEBS) $(OCR_DEBS) libtiff-tools postfix systemd \
	kamailio rtpengine-daemon sip-tester postgresql chromium chromium-driver
BENCH_DEBS := ghostscript postfix libspandsp2 tesseract-ocr tesseract-ocr-eng

.PHONY: run test lint typecheck pytest debs-run debs-test debs-bench bench clean

run: debs-run $(VENV)/.installed
	$(BIN)/fax-gateway --config $(CONFIG) serve

test: debs-test $(VENV)/.installed-test lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict gateway

pytest: $(VENV)/.installed-test
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

bench: debs-bench $(VENV)/.installed-test
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/line.py

# apt-get only for what is missing, and only when we may (root); otherwise say what to install.
# A policy-rc.d during the install keeps packages' own services (kamailio, rtpengine, postfix)
# from being started: the tests run private instances and never need the system's.
define ensure_debs
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    case " $$missing " in *" postfix "*) \
	      echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections;; \
	    esac; \
	    rc=/usr/sbin/policy-rc.d; made=""; \
	    if [ ! -e $$rc ]; then printf '#!/bin/sh\nexit 101\n' > $$rc && chmod +x $$rc && made=1; fi; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    status=$$?; [ -n "$$made" ] && rm -f $$rc; [ $$status = 0 ] || exit $$status; \
	  else echo "please install:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi
endef

debs-run:
	$(call ensure_debs,$(RUN_DEBS))

debs-test:
	$(call ensure_debs,$(TEST_DEBS))

debs-bench:
	$(call ensure_debs,$(BENCH_DEBS))

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
