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
    assert re.fullmatch(r"\d\d_[a-z0-9]+(_[a-z0-9]+)*", path.stem), \
        f"{path.name}: name notebooks NN_snake_case.ipynb"
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
    assert re.search(r"^SOLUTIONS = False\b", tagged[0].source, re.M), \
        f"{path.name}: the parameters cell must set SOLUTIONS = False"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_solutions(path: Path, stack, tmp_path):
    import papermill

    t0 = time.monotonic()
    papermill.execute_notebook(
        str(path), str(tmp_path / path.name), parameters={"SOLUTIONS": True},
        cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False,
        execution_timeout=300,
    )
    print(f"{path.name}: {time.monotonic() - t0:.1f}s")
