"""MkDocs hooks of the documentation site (mkdocs.yml ``hooks:``; not a page of the site).

- ``<!-- readme: TITLE -->`` in a page is replaced by the README's section ``## TITLE`` (up to
  the next ``## `` heading), so the site shows the README's option tables without a copy that
  could drift from it: the README stays the one source of the command's behaviour.
- The docstrings cross-reference in reST roles (``:func:`quantize```), which Markdown shows as
  text: the role's prefix is dropped from the rendered pages, the name stays as code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
_MARKER = re.compile(r"^<!-- readme: (?P<title>.+?) -->$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):(?=<code)")


def readme_section(title: str, text: str | None = None) -> str:
    """The README's ``## title`` section, without its heading; its ``###`` headings become ``##``.

    Raises:
        ValueError: no such section (the build then fails: the marker is stale).
    """
    text = README.read_text(encoding="utf-8") if text is None else text
    match = re.search(rf"^## {re.escape(title)}\n(?P<body>.*?)(?=^## |\Z)", text, re.S | re.M)
    if match is None:
        raise ValueError(f"README.md has no section '## {title}'")
    return re.sub(r"^###", "##", match.group("body"), flags=re.M).strip() + "\n"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _MARKER.sub(lambda m: readme_section(m.group("title")), markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub("", html)
