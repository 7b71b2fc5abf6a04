"""The per-step pages in docs/ are generated from the step and reader docstrings: they must be current."""

from pipeline import docs


def test_docs_pages_are_generated_from_the_code():
    assert docs.stale() == [], "run: python -m pipeline.docs"


def test_markdown_conversion_keeps_tables_and_literal_blocks():
    text = docs._markdown("Title ``x``::\n\n    a b\n    c d\n\n===== =====\nkey   value\n===== =====\nrest")
    assert "`x`" in text and "```\na b\nc d\n```" in text and "```\n===== =====" in text
