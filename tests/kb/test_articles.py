from __future__ import annotations

from pathlib import Path

import pytest

from kb.articles import ArticleError, load_articles, load_directory, parse_article

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
    (tmp_path / "e.md").write_text(
        GOOD.replace("id: tea", "id: tea3").replace("locale: en", "locale: xx"), "utf-8")
    (tmp_path / "f.md").write_text(GOOD.replace("id: tea", "id: tea4").replace(
        "questions:\n  - How do I store tea?", "questions: How do I store tea?"), "utf-8")
    result = load_directory(tmp_path)
    assert [a.id for a in result.articles] == ["tea", "tea2"]
    assert [(Path(e.path).name, e.line) for e in result.errors] == [
        ("b.md", 2), ("c.md", 3), ("e.md", 4), ("f.md", 5)]


def _with(**fields: str) -> str:
    """GOOD with some front-matter lines replaced (``name: value`` as written)."""
    lines = GOOD.splitlines(keepends=True)
    for name, value in fields.items():
        lines = [f"{name}: {value}\n" if line.startswith(f"{name}:") else line
                 for line in lines]
    return "".join(lines)


@pytest.mark.parametrize("locale", ["42", "xx", '""', "", "pt_BR", "[ja]", "japanese"])
def test_a_locale_that_is_no_language_tag_is_refused_at_its_line(locale: str) -> None:
    with pytest.raises(ArticleError) as refused:
        parse_article(_with(locale=locale), "kb/en/tea.md")
    assert (refused.value.path, refused.value.line) == ("kb/en/tea.md", 4)
    assert "'locale' must be a language tag" in refused.value.message


@pytest.mark.parametrize(("written", "stored"), [
    ("ja", "ja"), ("en", "en"), ("zh-TW", "zh-TW"), ("pt-BR", "pt-BR"), ("pt-br", "pt-BR"),
    ("es-419", "es-419"), ("zh-Hant", "zh-Hant"), ("fil", "fil")])
def test_real_language_tags_are_read(written: str, stored: str) -> None:
    assert parse_article(_with(locale=written)).locale == stored


def test_an_article_without_a_locale_is_japanese_as_before() -> None:
    text = "".join(line for line in GOOD.splitlines(keepends=True)
                   if not line.startswith("locale:"))
    assert parse_article(text).locale == "ja"


@pytest.mark.parametrize("name", ["questions", "products", "tags"])
def test_a_list_field_written_as_one_string_is_refused_at_its_line(name: str) -> None:
    text = _with(**{name: "Can I return it?, and exchange it?"})
    text = text.replace("\n  - How do I store tea?", "") if name == "questions" else text
    with pytest.raises(ArticleError) as refused:
        parse_article(text, "tea.md")
    line = {"questions": 5, "products": 7, "tags": 8}[name]
    assert refused.value.line == line
    assert f"'{name}' must be a list of strings" in refused.value.message


@pytest.mark.parametrize(("written", "read"), [
    ("2026-11-01", "2026-11-01"), ('"2026-11-01"', "2026-11-01"),
    ("2026-11-01 10:30:00", "2026-11-01T10:30:00"),
    ("2026-11-01T10:30:00+09:00", "2026-11-01T10:30:00+09:00")])
def test_updated_is_read_as_an_iso_date(written: str, read: str) -> None:
    assert parse_article(_with(updated=written)).updated == read


@pytest.mark.parametrize("bad", ["soon", "2026-13-01", "[2026]"])
def test_an_updated_that_is_no_date_is_refused_at_its_line(bad: str) -> None:
    with pytest.raises(ArticleError) as refused:
        parse_article(_with(updated=bad), "tea.md")
    assert refused.value.line == 9 and "'updated' must be a date" in refused.value.message


def test_files_declaring_one_id_are_all_refused_each_naming_the_others(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "tea.md").write_text(GOOD, encoding="utf-8")  # id on line 2
    (tmp_path / "en" / "tea-copy.md").write_text(  # id on line 3
        GOOD.replace("id: tea\ntitle: Storing tea", "title: Tea, again\nid: tea"), "utf-8")
    (tmp_path / "en" / "kettle.md").write_text(GOOD.replace("id: tea", "id: kettle"), "utf-8")
    first, second = str(tmp_path / "en" / "tea-copy.md"), str(tmp_path / "en" / "tea.md")

    result = load_directory(tmp_path)
    assert [a.id for a in result.articles] == ["kettle"]  # neither copy is guessed at
    assert [(e.path, e.line) for e in result.errors] == [(first, 3), (second, 2)]
    assert f"also declared in {second}:2" in result.errors[0].message
    assert f"also declared in {first}:3" in result.errors[1].message
    assert all("duplicate id 'tea'" in e.message and "none of these files is imported"
               in e.message for e in result.errors)

    backwards = load_articles(sorted(tmp_path.rglob("*.md"), reverse=True))
    assert backwards.articles == result.articles  # whatever the order the files come in
    assert list(map(str, backwards.errors)) == list(map(str, result.errors))


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
