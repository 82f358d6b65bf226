"""The exercise machinery: the registry, ``check()``, ``solution()`` and the result types.

>>> from course_lib.exercises import BLANK, check
>>> check("01.up_query", BLANK)                           # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
ExerciseNotAnswered: 01.up_query is not answered yet ...
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from course_lib import progress

__all__ = [
    "BLANK",
    "CheckResult",
    "Exercise",
    "ExerciseError",
    "ExerciseFailed",
    "ExerciseNotAnswered",
    "ExerciseSetupError",
    "REGISTRY",
    "StackLike",
    "check",
    "get",
    "register",
    "solution",
]


class _Blank:
    """The placeholder a learner replaces with an answer; falsy, prints as BLANK."""

    _instance: ClassVar[_Blank | None] = None

    def __new__(cls) -> _Blank:
        # One shared sentinel, so `answer is BLANK` holds everywhere.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "BLANK"

    def __bool__(self) -> bool:
        return False


#: Put this where the learner's answer goes: ``answer = BLANK``.
BLANK = _Blank()


class ExerciseError(Exception):
    """Base class of everything ``check()`` raises about an answer.

    In a notebook the learner sees the message alone, not a traceback through the
    checking code: IPython calls ``_render_traceback_`` to draw an exception. The
    cell still fails, so papermill stops there as with any error.
    """

    def _render_traceback_(self) -> list[str]:
        """Return the lines IPython shows for this exception: the hint, nothing else."""
        text = str(self)
        if isinstance(self, ExerciseNotAnswered):
            text = f"✍️ {text}"
        return text.splitlines()


class ExerciseNotAnswered(ExerciseError):
    """The answer is still BLANK (or empty): says what to write and gives a nudge."""


class ExerciseFailed(ExerciseError, AssertionError):
    """The answer is wrong; the message is the most specific hint available."""


class ExerciseSetupError(RuntimeError):
    """The check itself cannot run (stack down, no data yet, broken reference answer)."""


class StackLike(Protocol):
    """What a check needs from the stack: the Prometheus base URL."""

    prometheus_url: str


def prometheus_url(stack: StackLike | str | None) -> str:
    """Return the Prometheus base URL of ``stack`` (None: the COURSE_* environment's stack)."""
    if isinstance(stack, str):
        return stack.rstrip("/")
    if stack is None:
        from course_lib.config import StackConfig

        return StackConfig.from_env().url("prometheus")
    return str(stack.prometheus_url).rstrip("/")


@dataclass(frozen=True)
class CheckResult:
    """A passed check: ``ok``, a ``message``, and a ✅ line in notebooks.

    >>> print(CheckResult("01.up_query", True, "1 series, values match"))
    ✅ 01.up_query: 1 series, values match
    """

    exercise: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return f"{'✅' if self.ok else '❌'} {self.exercise}: {self.message}"

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return f"{'✅' if self.ok else '❌'} **{self.exercise}** — {self.message}"


@dataclass
class Exercise:
    """Base of every exercise kind; a subclass implements ``evaluate`` and ``reference``.

    ``nudge`` is a hint shown when the answer is still blank (and when a
    wrong answer gets no more specific hint); it should help without
    giving the answer away.
    """

    kind: ClassVar[str] = "exercise"
    #: What the learner writes, completing "replace BLANK with ...".
    what: ClassVar[str] = "your answer"

    id: str
    nudge: str = field(default="", kw_only=True)

    def evaluate(self, answer: Any, stack: StackLike | str | None) -> str:
        """Return a success message, or raise ExerciseFailed with a hint."""
        raise NotImplementedError

    def reference(self, stack: StackLike | str | None) -> Any:
        """Return the reference answer (what ``solution()`` hands out)."""
        raise NotImplementedError

    def check(self, answer: Any, stack: StackLike | str | None = None) -> CheckResult:
        """Check ``answer`` without going through the registry (handy in tests)."""
        if _is_blank(answer):
            raise ExerciseNotAnswered(self.unanswered_message())
        try:
            detail = self.evaluate(answer, stack)
        except ExerciseFailed as exc:
            # Name the exercise in the message a learner sees under the traceback.
            raise ExerciseFailed(f"❌ {self.id}: {exc}") from None
        return CheckResult(self.id, True, detail)

    def unanswered_message(self) -> str:
        """Return the message for a blank answer: which exercise, what to write, a nudge."""
        text = f"{self.id} is not answered yet: replace BLANK with {self.what}."
        if self.nudge:
            text += f" Hint: {self.nudge}"
        return text

    def fail(self, message: str) -> ExerciseFailed:
        """Return an ExerciseFailed for ``message``, with the nudge appended if there is one."""
        if self.nudge and self.nudge not in message:
            message = f"{message} (Hint: {self.nudge})"
        return ExerciseFailed(message)


#: Every registered exercise, keyed by id ("01.up_query").
REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise`` to the catalog and return it; ids must be unique.

    >>> from course_lib.exercises import PromQL
    >>> register(PromQL("01.up_query", "up"))
    Traceback (most recent call last):
    ValueError: exercise id '01.up_query' is registered twice; pick a new id.
    """
    if exercise.id in REGISTRY:
        raise ValueError(f"exercise id {exercise.id!r} is registered twice; pick a new id.")
    REGISTRY[exercise.id] = exercise
    return exercise


def get(exercise_id: str) -> Exercise:
    """Return the registered exercise ``exercise_id`` (KeyError names close matches)."""
    try:
        return REGISTRY[exercise_id]
    except KeyError:
        close = difflib.get_close_matches(exercise_id, REGISTRY, n=3)
        also = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no exercise {exercise_id!r}.{also}") from None


def check(exercise_id: str, answer: Any, stack: StackLike | str | None = None) -> CheckResult:
    """Check a learner's answer for real; return a ✅ result or raise with a specific hint.

    ``stack`` is anything with ``.prometheus_url`` (or the URL itself); None
    means the stack configured by the COURSE_* environment (``make lab``).
    Put the call last in the cell so the notebook shows the ✅ line.

    >>> check("01.up_query", 'up{job="prometheus"}', stack)
    ✅ 01.up_query: right — 1 series, values match the reference

    Each check of an answered exercise is recorded (``python -m course_lib progress``).
    """
    exercise = get(exercise_id)
    try:
        result = exercise.check(answer, stack)
    except ExerciseFailed:
        progress.record(exercise.id, False)
        raise
    progress.record(exercise.id, True)
    return result


def solution(exercise_id: str, stack: StackLike | str | None = None) -> Any:
    """Return the reference answer of ``exercise_id`` (some kinds compute it from the stack).

    >>> solution("01.up_query")
    'up{job="prometheus"}'
    """
    return get(exercise_id).reference(stack)


def _is_blank(answer: Any) -> bool:
    """Tell whether ``answer`` is still unanswered (BLANK, None, ..., or an empty string)."""
    if answer is BLANK or answer is None or answer is Ellipsis:
        return True
    return isinstance(answer, str) and not answer.strip()
