from __future__ import annotations

from pathlib import Path

import pytest

from kb.articles import ArticleError, load_directory, parse_article

GOOD = """---
id: tea
title: Storing tea
locale: en
questions:
  - How do I store tea?
products: [OMO-TEA-001]
tags: [care]
updated: 2026-11-01
---
Keep it sealed.

More details here.
"""


def test_parse_article_reads_front_matter_and_short_answer() -> None:
    article = parse_article(GOOD, "tea.md")
    assert article.id == "tea"
    assert article.questions == ("How do I store tea?",)
    assert article.products == ("OMO-TEA-001",)
    assert article.updated == "2026-11-01"
    assert article.short_answer == "Keep it sealed."


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("no front matter\n", 1, "missing front matter"),
        ("---\nid: x\ntitle: y\n", 3, "not closed"),
        ("---\nid: x\ntitle: [unclosed\nlocale: en\n---\nbody\n", 4, "invalid YAML"),
        ("---\ntitle: y\n---\nbody\n", 2, "'id'"),
        ("---\nid: x\ntitle: y\nlocale: en\nquestions: {a: 1}\n---\nbody\n", 5, "questions"),
        ("---\nid: x\ntitle: y\n---\n\n", 5, "empty body"),
    ],
)
def test_malformed_article_reports_path_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ArticleError) as caught:
        parse_article(text, "kb/bad.md")
    assert caught.value.path == "kb/bad.md"
    assert caught.value.line == line
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"kb/bad.md:{line}:")


def test_loader_keeps_going_after_a_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.md").write_text("---\nid: [\n---\nx\n", encoding="utf-8")
    (tmp_path / "c.md").write_bytes(b"---\nid: c\ntitle: \xff\n---\nbody\n")
    (tmp_path / "d.md").write_text(GOOD.replace("id: tea", "id: tea2"), encoding="utf-8")
    (tmp_path / "e.md").write_text(GOOD, encoding="utf-8")  # duplicate id
    result = load_directory(tmp_path)
    assert [a.id for a in result.articles] == ["tea", "tea2"]
    assert sorted(Path(e.path).name for e in result.errors) == ["b.md", "c.md", "e.md"]
    assert all(e.line >= 1 for e in result.errors)


def test_sample_kb_is_bilingual_and_tied_to_demo_products(sample_articles) -> None:
    assert len(sample_articles) >= 30
    locales = {a.locale for a in sample_articles}
    assert {"ja", "en"} <= locales
    skus = {sku for a in sample_articles for sku in a.products}
    assert {"OMO-TEA-001", "OMO-KETTLE-002", "OMO-TOWEL-003"} <= skus
    topics = {tag for a in sample_articles for tag in a.tags}
    assert {
        "returns",
        "delivery",
        "stores",
        "points",
        "payment",
        "product-care",
        "warranty",
    } <= topics
    assert all(a.questions and a.short_answer for a in sample_articles)
