"""Phone and SMS without a hub: signatures over the official vectors, TwiML shapes,
parameter parsing, SMS segment counts, business hours, phone-number spellings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.datastructures import FormMultiDict
from twilio.request_validator import RequestValidator

from channels.phone import parse, twiml
from channels.phone.hours import is_open
from channels.phone.signature import is_signed
from channels.phone.sms import count_segments
from hub.calls import merge_state
from hub.identity import InvalidIdentity, normalize_phone
from hub.settings import Settings
from tests.shared_data import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "twilio"
URLS = twiml.Urls("https://hub.example.com")


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _vectors() -> list[tuple[str, Any, str]]:
    cases = [*_fixture("signature-docs-example.json")["cases"],
             *_fixture("signature-twilio-python-tests.json")["cases"]]
    vectors = []
    for case in cases:
        params: Any = case.get("params")
        if "params_multi" in case:
            params = FormMultiDict(case["params_multi"])
        elif "raw_body" in case:
            params = case["raw_body"]
        vectors.append((case["url"], params, case["x_twilio_signature"]))
    return vectors


@pytest.mark.parametrize(("url", "params", "signature"), _vectors())
def test_official_signature_vectors_verify(url: str, params: Any, signature: str) -> None:
    settings = Settings(twilio_account_sid="AC1", twilio_auth_token="12345")
    assert is_signed(settings, url, params, {"x-twilio-signature": signature})
    wrong = Settings(twilio_account_sid="AC1", twilio_auth_token="54321")
    assert not is_signed(wrong, url, params, {"x-twilio-signature": signature})
    assert not is_signed(settings, url, params, {})


form_keys = st.sampled_from(["CallSid", "From", "To", "Digits", "SpeechResult", "Body"])


@given(st.dictionaries(form_keys, st.text(max_size=20), min_size=1), st.text(max_size=5))
def test_any_change_to_a_signed_form_is_refused(form: dict[str, str], extra: str) -> None:
    settings = Settings(twilio_account_sid="AC1", twilio_auth_token="token")
    url = "https://hub.example.com/webhooks/twilio/gather?attempt=1"
    signature = RequestValidator("token").compute_signature(url, form)
    headers = {"x-twilio-signature": signature}
    assert is_signed(settings, url, form, headers)
    key = sorted(form)[0]
    tampered = {**form, key: form[key] + "x" + extra}
    assert not is_signed(settings, url, tampered, headers)
    assert not is_signed(settings, url.replace("attempt=1", "attempt=2"), form, headers)


def _xml(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == "Response"
    return root


def test_ask_code_gathers_dtmf_and_japanese_speech() -> None:
    root = _xml(twiml.ask_code(URLS, twiml.Voice("ja", "Polly.Mizuki"), attempt=1))
    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("input") == "dtmf speech" and gather.get("language") == "ja-JP"
    assert gather.get("numDigits") == "6"
    assert gather.get("action") == "https://hub.example.com/webhooks/twilio/gather?attempt=1&lang=ja"
    say = gather.find("Say")
    assert say is not None and say.get("language") == "ja-JP"
    assert say.get("voice") == "Polly.Mizuki" and "6桁のコード" in (say.text or "")
    offer = gather.findall("Say")[-1]
    assert offer.get("language") == "en-US" and "press 9" in (offer.text or "")
    # the gather waits for six digits: a lone 9 goes at once only with the key that ends it
    assert gather.get("finishOnKey") == "#" and "pound key" in (offer.text or "")
    redirect = root.find("Redirect")
    assert redirect is not None and redirect.text == gather.get("action")


def test_retry_says_sorry_first_and_english_is_selectable() -> None:
    root = _xml(twiml.ask_code(URLS, twiml.Voice("en"), attempt=2, retry=True))
    assert [child.tag for child in root] == ["Say", "Gather", "Redirect"]
    assert root[0].get("language") == "en-US" and "could not find" in (root[0].text or "")
    assert root[1].get("language") == "en-US"


def test_connected_announces_recording_then_offers_the_menu() -> None:
    root = _xml(twiml.connected(URLS, twiml.Voice(), linked=True, open_now=True))
    assert [child.tag for child in root] == ["Say", "Say", "Start", "Gather", "Redirect"]
    assert "録音" in (root[1].text or "")
    start = root.find("Start")
    assert start is not None
    recording, transcription = start.find("Recording"), start.find("Transcription")
    assert recording is not None and transcription is not None
    assert recording.get("recordingStatusCallback", "").endswith("/webhooks/twilio/recording")
    assert transcription.get("languageCode") == "ja-JP"
    assert transcription.get("track") == "both_tracks"
    assert transcription.get("statusCallbackUrl", "").endswith("/webhooks/twilio/transcription")
    menu = root.find("Gather")
    assert menu is not None and menu.get("numDigits") == "1" and menu.get("input") == "dtmf"


def test_closed_line_takes_a_voicemail_transcribed_live_by_default() -> None:
    root = _xml(twiml.connected(URLS, twiml.Voice(), linked=False, open_now=False))
    assert [child.tag for child in root] == ["Say", "Start", "Record"]
    transcription = root.find("Start/Transcription")
    assert transcription is not None and transcription.get("languageCode") == "ja-JP"
    assert transcription.get("track") == "inbound_track"
    assert transcription.get("statusCallbackUrl", "").endswith("/webhooks/twilio/transcription")
    record = root[2]
    assert record.get("recordingStatusCallback", "").endswith("/webhooks/twilio/recording")
    assert record.get("maxLength") == "180"
    with_own_engine = _xml(twiml.connected(URLS, twiml.Voice(), linked=False, open_now=False,
                                           transcribe_voicemail=False))
    assert [child.tag for child in with_own_engine] == ["Say", "Record"]


def test_to_agent_dials_the_assignee_then_queues() -> None:
    root = _xml(twiml.to_agent(twiml.Voice(), "support", twiml.agent_client_name(7)))
    assert [child.tag for child in root] == ["Say", "Dial", "Enqueue"]
    client = root[1].find("Client")
    assert client is not None and (client.text or "").strip() == "agent-7"
    assert root[2].text == "support"
    assert [c.tag for c in _xml(twiml.to_agent(twiml.Voice(), "support"))] == ["Say", "Enqueue"]


def test_incoming_call_fixture_parses_to_a_call_item() -> None:
    body = _fixture("incoming-call-twilio-labs-plugin-webhook.json")["body"]
    inbound = parse.call_inbound(body)
    assert inbound.channel == "phone" and inbound.kind == "call"
    assert inbound.identity_kind == "phone" and inbound.identity_value == "+15017122661"
    assert inbound.external_id == body["CallSid"]
    assert inbound.data["status"] == "ringing" and inbound.data["direction"] == "inbound"


def test_incoming_sms_fixture_parses_to_a_message() -> None:
    body = _fixture("incoming-sms-twilio-labs-plugin-webhook.json")["body"]
    inbound = parse.sms_inbound(body)
    assert (inbound.channel, inbound.text, inbound.external_id) == (
        "sms", "Ahoy", body["MessageSid"])


@pytest.mark.parametrize("missing", ["CallSid", "From", "To"])
def test_missing_call_parameters_are_refused(missing: str) -> None:
    body = dict(_fixture("incoming-call-twilio-labs-plugin-webhook.json")["body"])
    del body[missing]
    with pytest.raises(parse.MissingParams) as caught:
        parse.call_inbound(body)
    assert caught.value.names == [missing]


def test_realtime_transcription_keeps_final_utterances_only() -> None:
    base = {"CallSid": "CA1", "TranscriptionSid": "GT1", "SequenceId": "3",
            "TranscriptionEvent": "transcription-content", "Track": "outbound_track",
            "TranscriptionData": json.dumps({"transcript": "お待たせしました", "confidence": 0.9}),
            "Timestamp": "2026-11-22T12:00:00.000Z"}
    said = parse.utterance({**base, "Final": "true"})
    assert said is not None and said.speaker == "agent" and said.external_id == "GT1:3"
    assert said.occurred_at == datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert parse.utterance({**base, "Final": "false"}) is None
    assert parse.utterance({**base, "TranscriptionEvent": "transcription-stopped"}) is None


@pytest.mark.parametrize("said", [
    "123456", "１２３４５６", "123 456", "1 2 3 4 5 6", "一二三四五六", "コードは123-456です",
    "いち 123、456"])
def test_spoken_codes_become_digit_runs(said: str) -> None:
    from hub.links import find_code

    assert find_code(parse.spoken_digits(said)) == "123456"


def test_legacy_transcription_is_read_too() -> None:
    said = parse.utterance({"CallSid": "CA1", "TranscriptionSid": "TR1",
                            "TranscriptionStatus": "completed", "TranscriptionText": "hello"})
    assert said is not None and said.text == "hello" and said.speaker == "customer"


@pytest.mark.parametrize(("text", "encoding", "segments"), [
    ("Hello", "GSM-7", 1), ("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2),
    ("{}" * 40, "GSM-7", 1), ("{}" * 40 + "a", "GSM-7", 2), ("こんにちは", "UCS-2", 1),
    ("あ" * 70, "UCS-2", 1),
    ("あ" * 71, "UCS-2", 2), ("😀" * 35, "UCS-2", 1), ("😀" * 36, "UCS-2", 2)])
def test_sms_segments(text: str, encoding: str, segments: int) -> None:
    counted = count_segments(text)
    assert (counted.encoding, counted.segments) == (encoding, segments)


def test_business_hours_in_tokyo() -> None:
    settings = Settings(twilio_business_hours="09:00-18:00")
    tuesday_10_jst = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    tuesday_19_jst = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    sunday_10_jst = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    holiday_monday_10_jst = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 勤労感謝の日
    assert is_open(settings, tuesday_10_jst)
    assert not is_open(settings, tuesday_19_jst)
    assert not is_open(settings, sunday_10_jst)
    assert not is_open(settings, holiday_monday_10_jst)
    assert is_open(settings.with_changes(closed_on_public_holidays=False),
                   holiday_monday_10_jst)
    assert is_open(Settings(), sunday_10_jst)
    assert not is_open(Settings(business_hours="09:00-18:00"), tuesday_19_jst)


STATES = [("queued", 0), ("ringing", 1), ("in-progress", 2), ("completed", 3)]


@given(st.lists(st.sampled_from(STATES), min_size=1, max_size=12))
def test_call_state_follows_the_highest_sequence_whatever_the_order(
        reports: list[tuple[str, int]]) -> None:
    data: dict[str, Any] = {}
    changes = 0
    for status, sequence in reports:
        merged = merge_state(data, status, sequence, {"duration": 5})
        if merged is not None:
            data, changes = merged, changes + 1
    assert changes == len(set(reports))  # each CallSid + status applied once
    assert data["status"] == max(reports, key=lambda r: r[1])[0]
    assert data["events"] == dict(reports) and data["duration"] == 5


WIDE = str.maketrans("0123456789+-()", "０１２３４５６７８９＋－（）")
area = st.sampled_from([("3", 8), ("6", 8), ("45", 7), ("50", 8), ("120", 6)])


@given(area, st.data(), st.sampled_from(["", "-", " "]), st.booleans(), st.booleans(),
       st.booleans())
def test_jp_landline_and_free_dial_spellings_agree(
        prefix_len: tuple[str, int], data: st.DataObject, sep: str, international: bool,
        full_width: bool, parens: bool) -> None:
    prefix, length = prefix_len
    digits = data.draw(st.text("0123456789", min_size=length, max_size=length))
    head = f"(0{prefix})" if parens and not international else f"0{prefix}"
    text = f"+81{sep}{prefix}{sep}{digits}" if international else f"{head}{sep}{digits}"
    if full_width:
        text = text.translate(WIDE)
    assert normalize_phone(text) == f"+81{prefix}{digits}"


@given(st.sampled_from(["1", "44", "82", "86", "65"]), st.sampled_from("123456789"),
       st.text("0123456789", min_size=7, max_size=9), st.sampled_from(["+", "010", "＋"]))
def test_international_numbers_keep_their_country(country: str, first: str, rest: str,
                                                  prefix: str) -> None:
    """"+" or Japan's international prefix 010, then the country: never read as domestic."""
    try:
        once = normalize_phone(f"{prefix}{country} {first}{rest}")
    except InvalidIdentity:
        return
    assert once == f"+{country}{first}{rest}"
