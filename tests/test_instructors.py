"""INSTRUCTORS.md keeps up with the notebooks: a schedule row and a mistakes list for each."""

from __future__ import annotations

import re

from course_lib.config import repo_root


def test_every_notebook_has_a_schedule_row_and_five_mistakes():
    text = (repo_root() / "INSTRUCTORS.md").read_text()
    for path in sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        number = path.name[:2]
        assert re.search(rf"^\| [0-9:]+ \| {number} · .+ \| .+ \|$", text, re.M), (
            f"INSTRUCTORS.md: no schedule row for {path.name} (time it with `make solutions`)"
        )
        section = re.search(
            rf"^\*\*{number} · [^*]+\*\*\n\n((?:\d\. .*\n(?:   .*\n)*)+)", text, re.M
        )
        assert section, f"INSTRUCTORS.md: no common-mistakes list for {path.name}"
        items = re.findall(r"^\d\. ", section.group(1), re.M)
        assert len(items) == 5, f"{path.name}: {len(items)} common mistakes listed, want 5"
