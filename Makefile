# Two commands run the course: `make lab` (learn) and `make test` (verify).
# Both install what they need first: a venv with the pinned Python packages and
# the system binaries (Prometheus, Alertmanager, Pushgateway, ffmpeg, ...).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test test-fast setup sysdeps up down status doctor progress lint lock bench clean \
	solutions site

lab: setup  ## install, start the local stack, open JupyterLab on notebooks/
	$(PY) -m course_lib lab

test: setup  ## install, then run unit tests, doctests, config checks and every notebook
	$(PY) -m pytest

test-fast: $(STAMP)  ## pure unit tests and doctests: no stack, ffmpeg, processes (seconds)
	$(PY) -m pytest -q -m "not (stack or notebook or ffmpeg or process or slow)"

setup: sysdeps $(STAMP)

sysdeps:
	@bash scripts/install-system-deps.sh

$(STAMP): requirements.txt pyproject.toml scripts/install-python-deps.sh
	@bash scripts/install-python-deps.sh $(VENV) $(PYTHON)
	@touch $@

lock:  ## recompile requirements.txt from requirements.in (after changing a pin)
	$(VENV)/bin/uv pip compile requirements.in -o requirements.txt --python-version 3.11 \
		--custom-compile-command "make lock"

solutions: setup  ## execute every notebook with solutions and outputs into build/solutions/
	$(PY) -m course_tools solutions

site: $(STAMP)  ## build the course site (build/site/index.html) from build/solutions/
	@test -n "$$(ls build/solutions/*.ipynb 2>/dev/null)" || $(MAKE) solutions
	$(PY) -m course_tools site

up down status doctor progress: $(STAMP)
	$(PY) -m course_lib $@

lint: $(STAMP)  ## ruff (lint and format) over everything, mypy over course_lib
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

BENCH_STAMP := $(VENV)/.installed-bench

bench: setup $(BENCH_STAMP)  ## print the benchmark figures (not a test; takes a few minutes)
	@bash scripts/install-system-deps.sh --bench
	$(PY) bench/stack.py
	$(PY) bench/service.py
	$(PY) bench/limits.py
	$(PY) bench/history.py
	$(PY) bench/explain.py
	$(PY) bench/instrumentors.py
	$(PY) bench/middleware_breakdown.py
	$(PY) bench/latency_gap.py
	$(PY) bench/production.py

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $@

clean:  ## stop the stack and remove its state (keeps the venv)
	-$(PY) -m course_lib down
	rm -rf .course .course-test
