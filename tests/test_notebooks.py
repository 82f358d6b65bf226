"""Notebooks are tests: each runs headless against the isolated stack, and is committed clean."""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.config import repo_root

NOTEBOOK_DIR = repo_root() / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert re.fullmatch(r"\d\d_[a-z0-9]+(_[a-z0-9]+)*", path.stem), (
        f"{path.name}: name notebooks NN_snake_case.ipynb"
    )
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name} cell {index} has outputs: strip them"
        assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state in metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_a_parameters_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    assert re.search(r"^SOLUTIONS = False\b", tagged[0].source, re.M), (
        f"{path.name}: the parameters cell must set SOLUTIONS = False"
    )


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_solutions(path: Path, stack):
    """Also `make solutions`: the executed copy lands in build/solutions (and feeds the site)."""
    from course_tools import build

    executed = build.solutions_dir() / path.name
    try:
        seconds = build.execute(path, executed, solutions=True)
    finally:
        left = _stop_extra_processes(stack)
    print(f"{path.name}: {seconds:.1f}s")
    assert left == [], f"extra processes left running: {left}"
    _assert_figures_survive_export(executed)


def _stop_extra_processes(stack) -> list[str]:
    """Stop what a notebook left running (replicas, more Prometheus servers); return the names.

    Stopped whatever happened, so one failure doesn't cascade into the next notebook.
    """
    from course_lib import scale

    left = scale.running(stack.config)
    scale.stop(cfg=stack.config)
    return left


PLOTLY_JSON = "application/vnd.plotly.v1+json"


def _assert_figures_survive_export(executed: Path) -> None:
    """Every plotly figure of an executed notebook is drawn in its HTML export, offline.

    The kernel runs with PLOTLY_RENDERER=plotly_mimetype+notebook (tests/conftest.py), so
    each figure carries an HTML/JS copy next to the JSON that only JupyterLab can draw.
    """
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    figures = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if PLOTLY_JSON in out.get("data", {})
    ]
    for out in figures:
        assert "Plotly.newPlot" in out["data"].get("text/html", ""), (
            f"{executed.name}: a figure has no HTML copy: nbconvert would show an empty area"
        )
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert html.count("Plotly.newPlot(") >= len(figures), executed.name
    if figures:  # plotly.js itself is in the page: no CDN needed to draw
        assert 'src="https://cdn.plot.ly' not in html, executed.name
        assert "plotly.js v" in html.lower(), f"{executed.name}: plotly.js is not in the page"


# --- without solutions: the first exercise stops the run and shows its hint ---------------------

CHECK_CALL = re.compile(r"""^check\(\s*["']([^"']+)["']""", re.M)


def _first_exercise(path: Path) -> tuple[str, str]:
    """Return (exercise id, cell source) of the first cell that calls check(...)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and (match := CHECK_CALL.search(cell.source)):
            return match.group(1), cell.source
    raise AssertionError(f"{path.name}: no exercise (a cell calling check(...))")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_three_exercises_that_follow_the_pattern(path: Path):
    from course_lib.exercises import get

    nb = nbformat.read(path, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and CHECK_CALL.search(c.source)]
    assert len(cells) >= 3, f"{path.name}: {len(cells)} exercises, want 3 or more"
    for source in cells:
        exercise_id = CHECK_CALL.search(source).group(1)
        get(exercise_id)  # registered in a catalog
        assert "answer = BLANK" in source and f'solution("{exercise_id}"' in source, source
        assert source.rstrip().splitlines()[-1].startswith("check("), (
            f"{path.name}: check(...) must be the last line of the cell of {exercise_id}"
        )


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_without_solutions_stops_at_the_first_exercise(path: Path, stack, tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from course_lib.exercises import get

    exercise_id, source = _first_exercise(path)
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(path),
            str(tmp_path / path.name),
            parameters={"SOLUTIONS": False},
            cwd=str(NOTEBOOK_DIR),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=300,
        )
    left = _stop_extra_processes(stack)
    assert left == [], f"the first exercise comes before any extra process starts: {left}"
    err = info.value
    assert err.ename == "ExerciseNotAnswered", (err.ename, err.evalue)
    assert err.source.strip() == source.strip(), "stopped somewhere else than the first exercise"
    assert exercise_id in err.evalue and "replace BLANK" in err.evalue
    nudge = get(exercise_id).nudge
    assert nudge and nudge in err.evalue, err.evalue
    # The learner sees the message alone: no traceback through course_lib's checking code.
    shown = "\n".join(err.traceback)
    assert shown.startswith("✍️ " + exercise_id) and "course_lib" not in shown, shown


# --- the notebooks' own exercises reject typical wrong answers -----------------------------------


def test_01_metric_types_rejects_wrong_classifications():
    from course_lib.exercises import ExerciseFailed, get, solution

    exercise = get("01.metric_types")
    right = solution("01.metric_types")
    assert exercise.check(right).ok
    assert exercise.check({k: v.upper() for k, v in right.items()}).ok  # case doesn't matter
    wrong = [
        ({**right, "vrewcraft_thumbnail_duration_seconds": "summary"}, "can't"),
        ({**right, "vrewcraft_ffmpeg_jobs_active": "counter"}, "up and down"),
        ({**right, "vrewcraft_http_requests_total": "gauge"}, "_total"),
        ({**right, "vrewcraft_memory_usage_bytes": "metre"}, "not a metric type"),
        ({"vrewcraft_http_requests_total": "counter"}, "missing"),
        ("counter", "dict"),
    ]
    for answer, expected in wrong:
        with pytest.raises(ExerciseFailed, match=expected):
            exercise.check(answer)


def _bad_jobs():
    """Typical wrong run_job answers and a phrase of the hint each should get."""

    def leaks(metrics, operation, work):  # the seed: all bookkeeping on success only
        metrics.ffmpeg_jobs_active.inc()
        result = work()
        metrics.ffmpeg_duration.labels(operation=operation).observe(0.1)
        metrics.ffmpeg_jobs_active.dec()
        return result

    def swallows(metrics, operation, work):
        metrics.ffmpeg_jobs_active.inc()
        try:
            return work()
        except Exception:
            metrics.ffmpeg_errors.labels(operation=operation).inc()
        finally:
            metrics.ffmpeg_duration.labels(operation=operation).observe(0.1)
            metrics.ffmpeg_jobs_active.dec()

    def uncounted(metrics, operation, work):
        with (
            metrics.ffmpeg_jobs_active.track_inprogress(),
            metrics.ffmpeg_duration.labels(operation=operation).time(),
        ):
            return work()

    def never_active(metrics, operation, work):
        try:
            return work()
        finally:
            metrics.ffmpeg_duration.labels(operation=operation).observe(0.1)

    def no_result(metrics, operation, work):
        metrics.ffmpeg_jobs_active.inc()
        try:
            work()
        finally:
            metrics.ffmpeg_jobs_active.dec()

    def flag_gauge(metrics, operation, work):  # set(1)/set(0): wrong as soon as two overlap
        metrics.ffmpeg_jobs_active.set(1)
        start = time.perf_counter()
        try:
            return work()
        except Exception:
            metrics.ffmpeg_errors.labels(operation=operation).inc()
            raise
        finally:
            metrics.ffmpeg_duration.labels(operation=operation).observe(time.perf_counter() - start)
            metrics.ffmpeg_jobs_active.set(0)

    def wall_clock(metrics, operation, work):  # the seed's Date.now(), in Python
        metrics.ffmpeg_jobs_active.inc()
        start = time.time()
        try:
            return work()
        except Exception:
            metrics.ffmpeg_errors.labels(operation=operation).inc()
            raise
        finally:
            metrics.ffmpeg_duration.labels(operation=operation).observe(time.time() - start)
            metrics.ffmpeg_jobs_active.dec()

    def shortcut(metrics, operation, work):  # the text asks to write it by hand
        with metrics.ffmpeg_job(operation):
            return work()

    return [
        (flag_gauge, "not set\\(1\\)/set\\(0\\)"),
        (wall_clock, "wall clock"),
        (shortcut, "metrics.ffmpeg_job"),
        (leaks, "leaked"),
        (swallows, "disappeared"),
        (uncounted, "add 1"),
        (never_active, "should be 1"),
        (no_result, "return what work"),
        ("run_job", "function"),
    ]


@pytest.mark.parametrize(
    ("answer", "expected"), _bad_jobs(), ids=lambda a: getattr(a, "__name__", str(a))
)
def test_02_ffmpeg_job_rejects_leaky_instrumentation(answer, expected):
    from course_lib.exercises import ExerciseFailed, get

    with pytest.raises(ExerciseFailed, match=expected):
        get("02.ffmpeg_job").check(answer)


def test_02_ffmpeg_job_accepts_the_reference_and_other_right_answers():
    from course_lib.exercises import get, solution

    def with_context_managers(metrics, operation, work):
        try:
            with (
                metrics.ffmpeg_jobs_active.track_inprogress(),
                metrics.ffmpeg_duration.labels(operation=operation).time(),
            ):
                return work()
        except Exception:
            metrics.ffmpeg_errors.labels(operation=operation).inc()
            raise

    def with_monotonic(metrics, operation, work):
        from time import monotonic

        metrics.ffmpeg_jobs_active.inc()
        t0 = monotonic()
        ok = False
        try:
            result = work()
            ok = True
            return result
        finally:
            if not ok:
                metrics.ffmpeg_errors.labels(operation=operation).inc()
            metrics.ffmpeg_duration.labels(operation=operation).observe(monotonic() - t0)
            metrics.ffmpeg_jobs_active.dec()

    assert get("02.ffmpeg_job").check(solution("02.ffmpeg_job")).ok
    assert get("02.ffmpeg_job").check(with_context_managers).ok
    assert get("02.ffmpeg_job").check(with_monotonic).ok


@pytest.mark.stack
def test_live_exercises_of_01_and_02_reject_typical_mistakes(stack):
    import requests

    from course_lib.exercises import ExerciseFailed, get, solution

    # Thumbnails twice: a miss then a hit, so both cache_status series exist.
    for _ in range(2):
        requests.get(
            f"{stack.service_url}/api/videos/sample-1/thumbnail", params={"t": 0.5}, timeout=30
        )
    stack.wait_for(solution("02.cache_hit_ratio"), timeout=60)
    # Rates above 0, so that a wrong factor (increase for rate) shows in the numbers.
    stack.wait_for("sum(rate(vrewcraft_http_requests_total[1m])) > 0", timeout=60)

    for exercise_id in ("01.target_count", "02.requests_by_route", "02.cache_hit_ratio"):
        assert get(exercise_id).check(solution(exercise_id, stack), stack).ok, exercise_id

    count = get("01.target_count")
    targets = int(solution("01.target_count", stack))
    for wrong in (targets - 1, targets + 1):
        with pytest.raises(ExerciseFailed, match="too"):
            count.check(wrong, stack)

    by_route = get("02.requests_by_route")
    mistakes = {
        "sum(rate(vrewcraft_http_requests_total[1m]))": "route is missing",
        "rate(vrewcraft_http_requests_total[1m])": "series",
        "sum by (route) (vrewcraft_http_requests_total)": "counter",
        "sum by (route) (rate(vrewcraft_http_requests_total[2s]))": "scrape",
        "sum by (route) (increase(vrewcraft_http_requests_total[1m]))": "60×",
    }
    mistakes |= {
        "sum by (route) (irate(vrewcraft_http_requests_total[1m]))": "last two samples",
        "sum by (route) (rate(vrewcraft_http_requests_total[5m]))": "last minute",
        "sum by (route, method) (rate(vrewcraft_http_requests_total[1m]))": "method",
    }
    for answer, expected in mistakes.items():
        with pytest.raises(ExerciseFailed, match=expected):
            by_route.check(answer, stack)
    for answer in (  # right numbers, other forms: job and instance may stay
        "sum by (route, job) (rate(vrewcraft_http_requests_total[1m]))",
        "sum without (method, status_code) (rate(vrewcraft_http_requests_total[60s]))",
        "sum(rate(vrewcraft_http_requests_total[1m])) by (route)",
        "sum by (route) (increase(vrewcraft_http_requests_total[1m])) / 60",
    ):
        assert by_route.check(answer, stack).ok, answer

    ratio = get("02.cache_hit_ratio")
    hit = 'vrewcraft_thumbnail_requests_total{cache_status="hit"}'
    miss = 'vrewcraft_thumbnail_requests_total{cache_status="miss"}'
    for answer in (
        "vrewcraft_thumbnail_cache_hit_ratio",  # the gauge
        f"sum(rate({hit}[5m])) / sum(rate({miss}[5m]))",  # hits / misses
        f"rate({hit}[5m]) / rate(vrewcraft_thumbnail_requests_total[5m])",
        f"sum({hit}) / sum(vrewcraft_thumbnail_requests_total)",
    ):  # lifetime
        with pytest.raises(ExerciseFailed):
            ratio.check(answer, stack)
    with pytest.raises(ExerciseFailed, match="pairs up series whose labels are exactly the same"):
        ratio.check(f"rate({hit}[5m]) / rate(vrewcraft_thumbnail_requests_total[5m])", stack)
    with pytest.raises(ExerciseFailed, match="in-process gauge"):
        ratio.check("vrewcraft_thumbnail_cache_hit_ratio", stack)
    by_job = (
        f"sum by (job) (rate({hit}[5m]))"
        " / sum by (job) (rate(vrewcraft_thumbnail_requests_total[5m]))"
    )
    # Over the answer's own window: a replica stopped minutes ago still has a 5m rate.
    jobs = stack.query("count by (job) (rate(vrewcraft_thumbnail_requests_total[5m]))")
    without_status = (
        f"sum without (cache_status) (rate({hit}[5m]))"
        " / sum without (cache_status) (rate(vrewcraft_thumbnail_requests_total[5m]))"
    )
    if len(jobs) == 1:  # keeping the one job (and its instance) changes no number
        assert ratio.check(by_job, stack).ok
        assert ratio.check(without_status, stack).ok
    else:  # notebook 07's replicas were scraped too: one ratio per job is not the ratio
        with pytest.raises(ExerciseFailed, match="job"):
            ratio.check(by_job, stack)
    for answer in (f"sum(rate({hit}[5m])) / (sum(rate({hit}[5m])) + sum(rate({miss}[5m])))",):
        assert ratio.check(answer, stack).ok, answer
