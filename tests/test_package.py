"""course_lib's module map (its docstring) names every module the package has."""

import pkgutil

import course_lib


def test_module_map_names_every_module():
    modules = {m.name for m in pkgutil.iter_modules(course_lib.__path__)}
    missing = sorted(m for m in modules if f"``{m}``" not in (course_lib.__doc__ or ""))
    assert not missing, f"add these to the module map in course_lib/__init__.py: {missing}"
