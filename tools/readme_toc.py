"""Write the README's table of contents (its ## and ### headings) between its toc markers.

``python -m tools.readme_toc`` rewrites README.md; ``--check`` only says whether it is current
(tests/unit/test_readme_toc.py runs the check).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- toc -->", "<!-- /toc -->"


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def table_of_contents(markdown: str) -> str:
    lines: list[str] = []
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"^(##|###) (.+)$", line)
        if not match:
            continue
        title = match[2].strip()
        slug = anchor(title)
        # GitHub numbers repeated headings: -1, -2...
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            slug = f"{slug}-{count}"
        indent = "  " if match[1] == "###" else ""
        lines.append(f"{indent}- [{title.replace('`', '')}](#{slug})")
    return "\n".join(lines)


def with_table(markdown: str) -> str:
    before, rest = markdown.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table_of_contents(after)}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.readme_toc", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = with_table(current)
    if args.check:
        if current != wanted:
            print("README.md's table of contents is stale: run python -m tools.readme_toc")
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
