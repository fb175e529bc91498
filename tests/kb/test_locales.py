"""An article's locale is a real language tag, in its usual spelling."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kb.locales import ISO_639_1, InvalidLocale, normalize_locale

USUAL_SPELLING = re.compile(r"[a-z]{2,3}(-([A-Z][a-z]{3}|[A-Z]{2}|[0-9]{3}))?")


def mixed_case(text: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from((c.lower(), c.upper())) for c in text)).map("".join)


languages = st.sampled_from(sorted(ISO_639_1)) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=3)
subtags = st.sampled_from(["", "-Hant", "-Latn", "-TW", "-BR", "-419", "-US"])


@pytest.mark.parametrize(("given_tag", "usual"), [
    ("ja", "ja"), ("en", "en"), ("zh-TW", "zh-TW"), ("pt-BR", "pt-BR"), ("pt-br", "pt-BR"),
    ("EN", "en"), ("zh-hant", "zh-Hant"), ("es-419", "es-419"), ("fil", "fil"), (" ko ", "ko"),
])
def test_real_language_tags_are_accepted_in_their_usual_spelling(given_tag: str,
                                                                  usual: str) -> None:
    assert normalize_locale(given_tag) == usual


@pytest.mark.parametrize("bad", [42, "42", "xx", "", "   ", None, "pt_BR", "japanese", "j",
                                 "zh-Hant-TW", "en-", "-en", "en-1", ["ja"], 4.2, "ja\x00"])
def test_what_is_not_a_language_tag_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(InvalidLocale) as refused:
        normalize_locale(bad)
    assert "'locale'" in str(refused.value) and repr(bad) in str(refused.value)


@given(languages.flatmap(lambda language: subtags.map(lambda subtag: language + subtag))
       .flatmap(lambda tag: st.tuples(st.just(tag), mixed_case(tag))))
def test_any_casing_of_a_tag_gives_one_spelling(tags: tuple[str, str]) -> None:
    tag, typed = tags
    assert normalize_locale(typed) == normalize_locale(tag)
    assert USUAL_SPELLING.fullmatch(normalize_locale(typed))


# tag-shaped, with the letters that case-insensitive matching confuses with ASCII (ſ, K…)
ODD = "\u017f\u212a\u0130\u0131"
NEAR_MISSES = st.from_regex(
    rf"[a-z{ODD}]{{1,4}}([-_ ][A-Za-z{ODD}0-9]{{1,5}})?\s?", fullmatch=True)


@given(NEAR_MISSES | st.text(max_size=12) | st.integers() | st.none() | st.floats())
def test_whatever_is_accepted_is_a_well_formed_known_tag(value: object) -> None:
    try:
        tag = normalize_locale(value)
    except InvalidLocale:
        return
    assert USUAL_SPELLING.fullmatch(tag) and len(tag) <= 8  # kb_articles.locale holds 8
    language = tag.split("-")[0]
    assert len(language) == 3 or language in ISO_639_1
    assert normalize_locale(tag) == tag  # the usual spelling is its own


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=2)
       .filter(lambda code: code not in ISO_639_1))
def test_two_letters_that_name_no_language_are_refused(code: str) -> None:
    with pytest.raises(InvalidLocale):
        normalize_locale(code)
    with pytest.raises(InvalidLocale):
        normalize_locale(f"{code}-US")
