"""Text rewrites the ComfyUI frontend applies to widget values when it builds a prompt.

Two of them change what the server receives: dynamic prompts (`{a|b}` choices and C-style
comments stripped, on STRING widgets with `dynamicPrompts: true`) and filename patterns
(`%Node.widget%`, `%date:yyyy-MM-dd%` in the `filename_prefix` of save nodes). Mirrors
`processDynamicPrompt` and `applyTextReplacements` of ComfyUI_frontend.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

# JavaScript's `.` stops at these line terminators; Python's stops only at "\n".
_COMMENTS = re.compile(r"/\*[\s\S]*?\*/|//[^\n\r\u2028\u2029]*")
_PATTERN = re.compile(r"%([^%]+)%")
_DATE_TOKEN = re.compile(r"dd?|MM?|hh?|mm?|ss?|yyy?y?")
_UNSAFE_FILENAME_CHARS = re.compile(r'[/?<>\\:*|"\x00-\x1f\x7f]')


class RandomSource(Protocol):
    def random(self) -> float: ...


def process_dynamic_prompt(text: str, rng: RandomSource) -> str:
    """Strip comments, then replace each `{a|b|...}` block by one random choice (nested too).
    Escapes (`\\x`) are kept verbatim, as the frontend keeps them."""
    return _expand(_COMMENTS.sub("", text), rng)


def _expand(text: str, rng: RandomSource) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        i += 1
        if char == "\\":
            out.append("\\" + (text[i] if i < len(text) else "undefined"))
            i += 1
        elif char == "{":
            choice, i = _choice_block(text, i, rng)
            out.append(choice)
        else:
            out.append(char)
    return "".join(out)


def _choice_block(text: str, i: int, rng: RandomSource) -> tuple[str, int]:
    options: list[str] = []
    choice: list[str] = []
    depth = 0
    while i < len(text):
        char = text[i]
        i += 1
        if char == "\\":
            choice.append("\\" + (text[i] if i < len(text) else "undefined"))
            i += 1
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if not depth:
                break
            depth -= 1
        elif char == "|" and not depth:
            options.append("".join(choice))
            choice = []
            continue
        choice.append(char)
    options.append("".join(choice))
    picked = options[int(rng.random() * len(options))]
    return process_dynamic_prompt(picked, rng), i


def format_date(pattern: str, now: dt.datetime) -> str:
    """The frontend's tiny date formatter: yy/yyyy, M/MM, d/dd, h/hh, m/mm, s/ss."""

    def part(token: str) -> str:
        if token == "yy":
            return str(now.year)[2:]
        if token == "yyyy":
            return str(now.year)
        values = {"d": now.day, "M": now.month, "h": now.hour, "m": now.minute, "s": now.second}
        if token[0] in values:
            return str(values[token[0]]).rjust(len(token), "0")
        return token

    return _DATE_TOKEN.sub(lambda m: part(m.group(0)), pattern)


class NamedWidgets(Protocol):
    """A node as `%Node.widget%` lookups see it."""

    title: str
    search_name: str | None

    def widget_value(self, name: str) -> tuple[bool, Any]: ...


def apply_text_replacements(
    value: str, nodes: Callable[[], Iterable[NamedWidgets]], now: Callable[[], dt.datetime]
) -> str:
    """Replace `%date:FORMAT%` and `%NodeName.widget%`; unknown patterns stay as written."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(1)
        split = text.split(".")
        if len(split) != 2:
            if split[0].startswith("date:"):
                return format_date(split[0][5:], now())
            return match.group(0)
        everyone = list(nodes())
        found = [n for n in everyone if n.search_name == split[0]]
        found = found or [n for n in everyone if n.title == split[0]]
        if not found:
            return match.group(0)
        present, widget_value = found[0].widget_value(split[1])
        if not present:
            return match.group(0)
        return _UNSAFE_FILENAME_CHARS.sub("_", js_string(widget_value))

    return _PATTERN.sub(replace, value)


def js_string(value: Any) -> str:
    """`(value ?? '') + ''` as JavaScript computes it, for the common value types."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if v is None else js_string(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)
