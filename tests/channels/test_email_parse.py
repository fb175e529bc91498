"""Pure parsing of real mail: Japanese encodings, broken MIME, quotes, HTML, bounces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.email.charsets import decode_bytes, jis_to_cp932
from channels.email.htmltext import html_to_text
from channels.email.parse import decode_header_value, parse_message
from channels.email.quotes import split_reply
from tests.shared_data import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "email"


def _cpython_corpus() -> list[Path]:
    try:
        import test  # the standard library's own test package
    except ImportError:
        return []
    data = Path(os.path.dirname(test.__file__)) / "test_email" / "data"
    return sorted(data.glob("msg_*.txt"))


CORPUS = _cpython_corpus()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- every fixture and every CPython sample parses ---------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.eml")))
def test_every_shared_fixture_parses(name: str) -> None:
    mail = parse_message(fixture(name))
    assert not mail.unparseable
    assert mail.from_address and "@" in mail.from_address
    assert mail.text or mail.attachments


@pytest.mark.skipif(not CORPUS, reason="this Python ships without test/test_email/data")
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_cpython_sample_parses(path: Path) -> None:
    mail = parse_message(path.read_bytes())
    assert not mail.unparseable, mail.defects
    assert isinstance(mail.text, str) and isinstance(mail.subject, str)


def test_corpus_is_there_or_skipped_with_a_reason() -> None:
    if not CORPUS:
        pytest.skip("CPython's test_email data is not installed with this interpreter")
    assert len(CORPUS) >= 40


# --- Japanese round-trips, exactly -------------------------------------------------


def test_iso_2022_jp_subject_over_two_words_and_body() -> None:
    mail = parse_message(fixture("mimekit-japanese.eml"))
    assert mail.subject == "日本語メールテスト (testing Japanese emails)"
    assert mail.text == ("Let's see if both subject and body works fine...\n\n"
                         "日本語が\n正常に\n送れているか\nテスト.")
    assert mail.message_id == "<55AE6D15.4010805@veritas-vos-liberabit.com>"


def test_folded_subject_with_blank_continuation_and_reply_headers() -> None:
    mail = parse_message(fixture("mail-rfc2822-example14.eml"))
    assert mail.subject == "Re: TEST テストテスト"
    assert mail.in_reply_to == "<rid_5582199198@msgid.example.com>"
    assert mail.message_id == "<0CC5E11ED2C1D@example.com>"
    assert mail.from_name == "Atsushi Yoshida" and mail.from_address == "atsushi@example.com"


def test_utf8_subject_and_iso_2022_jp_body() -> None:
    mail = parse_message(fixture("mail-japanese_iso_2022.eml"))
    assert (mail.subject, mail.text) == ("まみむめも", "すみません。")
    assert mail.message_id is None


def test_shift_jis_8bit_body() -> None:
    mail = parse_message(fixture("mail-japanese_shift_jis.eml"))
    assert mail.text.startswith("あいうえお\n\nこのメールはテスト用のメールです。")
    assert "今後ともよろしくお願い申し上げます！" in mail.text
    assert "charset_fallback" not in mail.flags


def test_rfc2231_and_rfc2047_file_names() -> None:
    mail = parse_message(fixture("mail-japanese_attachment_long_name.eml"))
    assert mail.subject == "まみむめも" * 10
    [attachment] = mail.attachments
    assert attachment.name == "かきくけこ" * 5 + ".txt"
    assert attachment.data == b"this is the data\r\n"


def test_raw_shift_jis_attachment_name_from_a_japanese_mobile_mailer() -> None:
    name = "見積書①.txt".encode("cp932")
    raw = (b"From: a@docomo.ne.jp\r\nMessage-ID: <sjis@x>\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
           b"Content-Type: text/plain; charset=Shift_JIS\r\n\r\n" + "本文".encode("cp932") +
           b"\r\n--b\r\nContent-Type: text/plain; name=\"" + name + b"\"\r\n"
           b"Content-Disposition: attachment; filename=\"" + name + b"\"\r\n\r\n"
           b"data\r\n--b--\r\n")
    mail = parse_message(raw)
    assert mail.text == "本文"
    assert [(a.name, a.data) for a in mail.attachments] == [("見積書①.txt", b"data")]


@pytest.mark.parametrize(("name", "start"), [
    ("sisimai-lhost-kddi-01.eml", "送信先のメールボックスが一杯のため、送信できませんでした。"),
    ("sisimai-lhost-ezweb-02.eml", "次のあて先へのメッセージはエラーのため送信できませんでした。"),
])
def test_mislabelled_iso_2022_jp_is_detected(name: str, start: str) -> None:
    mail = parse_message(fixture(name))
    assert mail.text.startswith(start)
    assert "charset_fallback" in mail.flags


def test_mislabelled_raw_utf8_subject() -> None:
    assert parse_message(fixture("sisimai-lhost-kddi-01.eml")).subject == "メールエラー通知"


def test_subject_with_empty_encoded_word_and_mixed_text() -> None:
    mail = parse_message(fixture("sisimai-lhost-domino-02.eml"))
    assert mail.subject == ("DELIVERY FAILURE: ユーザー Neko (kijitora@example.co.jp) は "
                            "Domino ディレクトリには見つかりません。")


def test_office365_report_with_alternative_parts() -> None:
    mail = parse_message(fixture("sisimai-lhost-office365-13.eml"))
    assert mail.subject == "Undeliverable: にゃーん"
    assert mail.reports and mail.reports[0].failed
    assert "5.1.10" in mail.reports[0].reason()
    assert mail.headers["auto-submitted"] == "auto-replied"


def test_jis_mail_with_m_filter_bounce_text() -> None:
    mail = parse_message(fixture("sisimai-lhost-mfilter-01.eml"))
    assert mail.text.startswith("このメールは「m-FILTER」が自動的に生成して送信しています。")


# --- charsets ----------------------------------------------------------------------


def test_outlook_vendor_characters_in_iso_2022_jp_fall_back_through_cp932() -> None:
    jis = b"\x1b$B-!-\"\x1b(B test \x1b$B$3$s$K$A$O\x1b(B"  # ①② and こんにちは
    assert decode_bytes(jis, "iso-2022-jp").text == "①② test こんにちは"
    assert jis_to_cp932(b"\xa4\xa2") is None
    header = "=?ISO-2022-JP?B?GyRCLSEtIiQiGyhC?="
    assert decode_header_value(header) == "①②あ"


@pytest.mark.parametrize("label", ["iso-2022-jp", "us-ascii", "x-unknown-charset", None])
@pytest.mark.parametrize("codec", ["utf-8", "cp932", "euc_jp"])
def test_wrong_or_unknown_labels_are_detected(codec: str, label: str | None) -> None:
    text = "ご注文の商品がまだ届いていません。確認をお願いします。"
    decoded = decode_bytes(text.encode(codec), label)
    assert decoded.text == text
    assert decoded.fallback == (label is not None)


def test_labelled_charsets_are_trusted_when_they_fit() -> None:
    assert decode_bytes("①ｱｲｳ".encode("cp932"), "Shift_JIS").text == "①ｱｲｳ"
    assert decode_bytes("テスト".encode("euc_jp"), "EUC-JP").text == "テスト"
    assert decode_bytes("Grüße".encode("latin-1"), "iso-8859-1").text == "Grüße"


def test_unknown_charset_in_a_whole_message() -> None:
    raw = (b"From: a@example.com\r\nSubject: =?x-bogus?B?44GC?=\r\nMessage-ID: <u@x>\r\n"
           b"Content-Type: text/plain; charset=x-bogus\r\n\r\n") + "本文".encode()
    mail = parse_message(raw)
    assert mail.text == "本文" and mail.subject == "あ"
    assert "charset_fallback" in mail.flags


# --- HTML and quoted history -------------------------------------------------------


def test_html_only_mail_becomes_safe_text() -> None:
    html = ("<html><head><style>p{}</style><script>alert(1)</script></head><body>"
            "<p>こんにちは&amp;<b>よろしく</b></p><div>二行目<br>三行目</div>"
            "<img src=x onerror=alert(1) alt='logo'><ul><li>one</li></ul></body></html>")
    assert html_to_text(html) == "こんにちは&よろしく\n二行目\n三行目\n[logo]\n- one"
    raw = (b"From: a@example.com\r\nMessage-ID: <h@x>\r\nContent-Type: text/html; "
           b"charset=utf-8\r\n\r\n" + html.encode())
    mail = parse_message(raw)
    assert mail.html_only and "<" not in mail.text and "alert" not in mail.text


def test_alternative_prefers_plain_text() -> None:
    raw = (b"From: a@example.com\r\nMessage-ID: <alt@x>\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n--b\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--b--\r\n")
    mail = parse_message(raw)
    assert mail.text == "plain" and not mail.html_only


def test_html_blockquote_history_is_folded() -> None:
    html = ("<div>新しい返事です</div><div class=gmail_quote>2026年11月20日(金) 10:00 サポート "
            "&lt;support@example.com&gt;:<blockquote>以前の文</blockquote></div>")
    text = html_to_text(html)
    assert split_reply(text) == ("新しい返事です", True)


@pytest.mark.parametrize("history", [
    "On Fri, Nov 20, 2026 at 10:00 AM Support <support@example.com> wrote:\n> old text",
    "On Fri, Nov 20, 2026 at 10:00 AM Support <support@example.com>\nwrote:\n> old text",
    "山田 太郎 さんは書きました:\n> 以前の文",
    "2026年11月20日(金) 10:00 サポート <support@example.com>:\n\n> 以前の文",
    "-----Original Message-----\nFrom: support@example.com\nSent: Friday\nSubject: x\nold",
    "-------- 元のメッセージ --------\n件名: 注文\n以前の文",
    "差出人: サポート <support@example.com>\n送信日時: 2026年11月20日 10:00\n宛先: 山田\n"
    "件名: Re: 注文\n\n以前の文",
    "> 以前の文\n> 二行目\n",
    "＞以前の文\n＞二行目",
])
def test_quoted_history_is_folded(history: str) -> None:
    new, folded = split_reply(f"ありがとうございます。\n届きました。\n\n{history}")
    assert (new, folded) == ("ありがとうございます。\n届きました。", True)


@pytest.mark.parametrize("signature", [
    "-- \n山田 太郎\nTEL 03-0000-0000",
    "━━━━━━━━━━━━━━━━\n株式会社サンプル 山田太郎\nTEL: 03-0000-0000\n━━━━━━━━━━━━━━━━",
    "----------------------------\nTaro Yamada",
    "iPhoneから送信",
    "Sent from my iPhone",
])
def test_signatures_are_folded(signature: str) -> None:
    assert split_reply(f"届きました。\n\n{signature}") == ("届きました。", True)


def test_inline_replies_and_plain_mail_are_kept_whole() -> None:
    inline = "> 質問1\n答え1\n> 質問2\n答え2"
    assert split_reply(inline) == (inline, False)
    assert split_reply("昨日メールを書きました") == ("昨日メールを書きました", False)
    only_quote = "> 全部引用"
    assert split_reply(only_quote) == (only_quote, False)


# --- broken input never raises -----------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff\xfe", b"From: \r\n\r\n", b"Content-Type: multipart/mixed\r\n\r\nno boundary",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n", b"\r\n\r\n\r\n",
    b"Subject: =?utf-8?B?!!!?=\r\nFrom: =?utf-8?Q?=ZZ?= <a@b.c>\r\n\r\nbody",
    b"Content-Transfer-Encoding: base64\r\n\r\n@@@not base64@@@",
])
def test_broken_mime_never_raises(raw: bytes) -> None:
    mail = parse_message(raw)
    assert isinstance(mail.text, str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    mail = parse_message(raw)
    assert isinstance(mail.text, str) and isinstance(mail.flags, list)


_HEADER_LINES = st.sampled_from([
    b"From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <taro@example.jp>", b"From: broken",
    b"Subject: =?utf-8?B?44GC?=", b"Content-Type: multipart/mixed; boundary=zz",
    b"Content-Type: text/plain; charset=iso-2022-jp", b"Content-Transfer-Encoding: base64",
    b"Content-Type: message/rfc822", b"Message-ID: <x@y>", b"In-Reply-To: <<<>",
    b"Content-Disposition: attachment; filename*0*=utf-8''%E3%81; filename*1*=%82.txt",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_HEADER_LINES, max_size=6), st.binary(max_size=500),
       st.sampled_from([b"\r\n", b"\n"]))
def test_mail_shaped_garbage_never_raises(headers: list[bytes], body: bytes,
                                          newline: bytes) -> None:
    raw = newline.join(headers) + newline + newline + body.replace(b"zz", b"\r\n--zz\r\n")
    mail = parse_message(raw)
    assert isinstance(mail.subject, str)
