"""One way to say what a pydantic model refused: `where: what` for each problem, the field path
dotted (`prompt.3.inputs`), and the value when it is a short scalar (never a long text: it may
be a secret or megabytes)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def field_path(problem: Any, root: str = "") -> str:
    """The dotted location of one problem (`root` for the document itself)."""
    return ".".join(map(str, problem["loc"])) or root


def describe_problem(problem: Any, root: str = "", *, with_value: bool = False) -> str:
    where = field_path(problem, root)
    value = problem.get("input")
    got = ""
    if with_value and isinstance(value, str | int | float) and not isinstance(value, bool):
        got = f" (got {str(value)[:40]!r})"
    return f"{where}: {problem['msg']}{got}" if where else f"{problem['msg']}{got}"


def describe(
    error: ValidationError, root: str = "", *, most: int = 3, with_value: bool = False
) -> str:
    """The first `most` problems, `; `-separated."""
    return "; ".join(
        describe_problem(p, root, with_value=with_value) for p in error.errors()[:most]
    )


def first_problem(error: ValidationError, root: str = "") -> tuple[str, str]:
    """(field path, message) of the first problem: what a 400 answer names."""
    problem = error.errors()[0]
    return field_path(problem, root), describe_problem(problem, root)
