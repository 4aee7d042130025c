"""A griffe extension (mkdocs.yml, mkdocstrings' ``extensions``): two habits of this project's
Google-style docstrings that griffe's parser does not know, read as napoleon reads them.

- ``Example:`` (singular) is the examples section, as ``Examples:`` is (griffe knows only the
  plural, and would render the doctest as Markdown text);
- ``a, b: description`` in ``Args:`` documents each of the names with that description (griffe
  would take ``a, b`` as one unknown parameter).

Only the docstring text that the site renders changes; the source is untouched.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")
_GROUPED = re.compile(r"^(\s+)(\w+(?:, \w+)+): (.*)$")


def rewrite(doc: str) -> str:
    """The docstring with ``Example:`` -> ``Examples:`` and grouped parameters split."""
    lines = doc.splitlines()
    out: list[str] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        head = _SECTION.match(line)
        if head:
            section = head.group(2)
            if section == "Example":
                line = f"{head.group(1)}Examples:"
        grouped = _GROUPED.match(line) if section in ("Args", "Arguments", "Parameters") else None
        if grouped is None:
            out.append(line)
            i += 1
            continue
        indent, names, text = grouped.groups()
        rest: list[str] = []
        i += 1
        while (
            i < len(lines)
            and lines[i].strip()
            and len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            rest.append(lines[i])
            i += 1
        for name in names.split(", "):
            out.append(f"{indent}{name}: {text}")
            out.extend(rest)
    return "\n".join(out)


class ProjectDocstrings(griffe.Extension):
    """Rewrites every docstring of the loaded objects before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
