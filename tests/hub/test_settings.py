"""Settings are refused by name at start-up, not when they are first used."""

from __future__ import annotations

import socket
from datetime import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.cli import main
from hub.settings import SettingsError, load_settings, parse_span


def environ(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"OMOHUB_DATA_DIR": str(tmp_path), **{f"OMOHUB_{k.upper()}": v
                                                 for k, v in values.items()}}


@pytest.mark.parametrize("name,value", [
    ("business_hours", "25:00-99:00"), ("business_hours", "9時から18時"),
    ("business_hours", "22:00-02:00"), ("twilio_business_hours", "12:00-12:00"),
    ("twilio_business_hours", "09:00"), ("business_days", "1,2,9"),
    ("business_days", "mon,tue"), ("timezone", "Mars/Olympus"), ("max_text_chars", "lots"),
    ("reopen_window_hours", "three days"), ("bot_enabled", "maybe"),
    ("closed_on_public_holidays", "perhaps"), ("smtp_listen", "nohostport"),
    ("redis_url", "notaurl"), ("database_url", "mysql://root@localhost/omohub")])
def test_an_unusable_setting_is_refused_by_its_name(tmp_path: Path, name: str,
                                                    value: str) -> None:
    with pytest.raises(SettingsError, match=f"OMOHUB_{name.upper()}[=: ]"):  # URLs not shown
        load_settings(environ(tmp_path, **{name: value}))


def test_usable_settings_load(tmp_path: Path) -> None:
    settings = load_settings(environ(tmp_path, business_hours="09:00-18:00",
                                     business_days="0,1,2,3,4,5", timezone="Europe/Paris",
                                     max_text_chars="5000", bot_enabled="Off",
                                     smtp_listen="127.0.0.1:2525",
                                     redis_url="redis://127.0.0.1:6379/0"))
    assert settings.bot_enabled is False
    assert (settings.business_hours, settings.timezone, settings.max_text_chars) == (
        "09:00-18:00", "Europe/Paris", 5000)


def test_the_cli_says_which_setting_is_wrong_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in environ(tmp_path, business_hours="25:00-99:00").items():
        monkeypatch.setenv(key, value)
    assert main(["serve"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("omohub: OMOHUB_BUSINESS_HOURS='25:00-99:00'")
    assert "Traceback" not in error and len(error.splitlines()) == 1


def test_a_settings_file_takes_the_variables_names_or_the_settings(tmp_path: Path) -> None:
    config = tmp_path / "omohub.toml"
    config.write_text('OMOHUB_TIMEZONE = "Europe/Paris"\nmax_text_chars = 3000\n'
                      'Bot_Enabled = false\n', encoding="utf-8")
    settings = load_settings({**environ(tmp_path), "OMOHUB_CONFIG": str(config),
                              "OMOHUB_MAX_TEXT_CHARS": "4000"})  # the environment wins
    assert (settings.timezone, settings.max_text_chars, settings.bot_enabled) == (
        "Europe/Paris", 4000, False)


@pytest.mark.parametrize("content,problem", [
    ('OMOHUB_TIMEZNOE = "Asia/Tokyo"\n', "unknown setting 'OMOHUB_TIMEZNOE'"),
    ('[line]\nchannel_secret = "x"\n', "unknown setting 'line'"),
    ("timezone = \n", "not a TOML file"),
    (None, "cannot read it"),
])
def test_a_settings_file_it_cannot_use_is_refused_by_name(
        tmp_path: Path, content: str | None, problem: str) -> None:
    config = tmp_path / "omohub.toml"
    if content is not None:
        config.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError, match=problem):
        load_settings({**environ(tmp_path), "OMOHUB_CONFIG": str(config)})


def test_serve_says_in_one_line_that_the_mail_port_is_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        for key, value in environ(tmp_path, smtp_listen=address).items():
            monkeypatch.setenv(key, value)
        assert main(["serve"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"omohub: OMOHUB_SMTP_LISTEN='{address}': cannot listen there")
    assert len(error.splitlines()) == 1


@given(st.times(), st.times())
def test_every_span_within_a_day_reads_back_and_no_other(start: time, end: time) -> None:
    text = f"{start:%H:%M}-{end:%H:%M}"
    if f"{end:%H:%M}" <= f"{start:%H:%M}":  # across midnight, or empty: refused
        with pytest.raises(ValueError, match="after the start"):
            parse_span(text)
        return
    parsed = parse_span(text)
    assert parsed is not None
    assert [f"{t:%H:%M}" for t in parsed] == text.split("-")
