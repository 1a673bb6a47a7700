"""The README's table of contents lists its sections as they are (tools.readme_toc)."""

from __future__ import annotations

from tools.readme_toc import README
from tools.readme_toc import anchor
from tools.readme_toc import table_of_contents
from tools.readme_toc import with_table


def test_the_readme_table_of_contents_is_current():
    current = README.read_text()
    assert current == with_table(current), "run python -m tools.readme_toc"


def test_anchors_follow_githubs_rules():
    assert anchor("Redis Cluster") == "redis-cluster"
    assert anchor("Against a hostile user (issue 15)") == "against-a-hostile-user-issue-15"
    assert anchor("`make run` a person can read") == "make-run-a-person-can-read"


def test_headings_in_code_blocks_and_repeats_are_handled():
    markdown = "## A\n```\n## not a heading\n```\n### B\n## A\n"
    assert table_of_contents(markdown) == "- [A](#a)\n  - [B](#b)\n- [A](#a-1)"
