"""Instructor tooling around the course (dev dependencies, not imported by the notebooks).

* ``build`` — ``python -m course_tools solutions``: every notebook executed with its
  solutions into ``build/solutions/``; ``python -m course_tools site``: the static course
  site from them (Sphinx + myst-nb) in ``build/site/``.
"""
