# Two commands run the course: `make lab` (learn) and `make test` (verify).
# Both install what they need first: a venv with the pinned Python packages and
# the system binaries (Prometheus, Alertmanager, Pushgateway, ffmpeg, ...).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: lab test setup sysdeps up down status doctor lint bench clean solutions site progress

lab: setup  ## install, start the local stack, open JupyterLab on notebooks/
	$(PY) -m course_lib lab

test: setup  ## install, then run unit tests, config checks and every notebook
	$(PY) -m pytest

setup: sysdeps $(STAMP)

sysdeps:
	@bash scripts/install-system-deps.sh

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

solutions: setup  ## execute every notebook with solutions and outputs into build/solutions/
	$(PY) -m course_lib solutions

site: $(STAMP)  ## build the course site (build/site/index.html) from build/solutions/
	@test -n "$$(ls build/solutions/*.ipynb 2>/dev/null)" || $(MAKE) solutions
	$(PY) -m course_lib site

up down status doctor progress: $(STAMP)
	$(PY) -m course_lib $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .

BENCH_STAMP := $(VENV)/.installed-bench

bench: setup $(BENCH_STAMP)  ## print the benchmark figures (not a test; takes a few minutes)
	@bash scripts/install-system-deps.sh --bench
	$(PY) bench/stack.py
	$(PY) bench/service.py
	$(PY) bench/history.py
	$(PY) bench/explain.py
	$(PY) bench/instrumentors.py
	$(PY) bench/latency_gap.py

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $@

clean:  ## stop the stack and remove its state (keeps the venv)
	-$(PY) -m course_lib down
	rm -rf .course .course-test
