"""Dependencies are declared once per kind and agree: pyproject, requirements.in, the lock.

pyproject.toml says what the package needs ([project].dependencies) and what the lab and
the developers need (dependency groups); requirements.in pins each of those exactly;
requirements.txt is the lock compiled from it. Every third-party import in course_lib,
the notebooks, the tests and the benchmarks is declared.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
GROUPS = {
    group: [Requirement(r) for r in reqs] for group, reqs in PYPROJECT["dependency-groups"].items()
}


def pins(path: Path) -> dict[str, str]:
    """Return name -> version of every ``name==version`` line of a requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not an exact pin"
            found[canonicalize_name(req.name)] = spec.version
    return found


def test_requirements_in_pins_exactly_what_pyproject_declares():
    declared = {canonicalize_name(r.name): r for r in RUNTIME + sum(GROUPS.values(), [])}
    pinned = pins(REPO / "requirements.in")
    assert set(pinned) == set(declared), (
        f"only in requirements.in: {sorted(set(pinned) - set(declared))}; "
        f"only in pyproject.toml: {sorted(set(declared) - set(pinned))}"
    )
    for name, version in pinned.items():
        assert declared[name].specifier.contains(version, prereleases=True), (name, version)


def test_the_lock_is_compiled_from_requirements_in():
    locked = pins(REPO / "requirements.txt")
    for name, version in pins(REPO / "requirements.in").items():
        assert locked.get(name) == version, f"{name}: run `make lock` after changing a pin"


def imported_modules(sources: list[str]) -> set[str]:
    """Return the top-level third-party modules that ``sources`` import."""
    found = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    # The project's own modules, including test helpers that tests import by name.
    local = {"course_lib", "course_tools", "conftest"} | {
        p.stem for d in ("tests", "bench") for p in (REPO / d).glob("*.py")
    }
    return {m for m in found if m not in sys.stdlib_module_names and m not in local}


def distributions(modules: set[str]) -> set[str]:
    """Return the installed distributions that provide ``modules``."""
    provided = importlib.metadata.packages_distributions()
    missing = sorted(m for m in modules if m not in provided)
    assert not missing, f"imported but not installed: {missing}"
    return {canonicalize_name(d) for m in modules for d in provided[m]}


def notebook_sources() -> list[str]:
    """Return the code of every notebook cell (IPython magics dropped)."""
    cells = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                code = "".join(cell["source"])
                cells.append("\n".join(ln for ln in code.splitlines() if not ln.startswith("%")))
    return cells


def test_course_lib_and_notebooks_import_only_runtime_dependencies():
    sources = [p.read_text() for p in (REPO / "course_lib").rglob("*.py")] + notebook_sources()
    runtime = {canonicalize_name(r.name) for r in RUNTIME}
    undeclared = distributions(imported_modules(sources)) - runtime
    assert not undeclared, f"add to [project].dependencies and requirements.in: {undeclared}"


def test_tests_and_benchmarks_import_only_declared_dependencies():
    paths = [*(REPO / "tests").glob("*.py"), *(REPO / "bench").glob("*.py"), REPO / "conftest.py"]
    declared = {canonicalize_name(r.name) for r in RUNTIME + sum(GROUPS.values(), [])}
    # `make bench` installs requirements-bench.txt on top; `make test` doesn't need them.
    bench_only = set(pins(REPO / "requirements-bench.txt"))
    modules = {
        m
        for m in imported_modules([p.read_text() for p in paths])
        if canonicalize_name(m) not in bench_only
    }
    undeclared = distributions(modules) - declared
    assert not undeclared, f"add to a dependency group and requirements.in: {undeclared}"
