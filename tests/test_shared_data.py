"""The fixture-driven tests need the real payloads: refuse to pass vacuously without them."""

from __future__ import annotations

from tests.shared_data import FIXTURES


def test_shared_fixtures_are_present() -> None:
    for channel in ("line", "email", "twilio"):
        assert any((FIXTURES / channel).iterdir()), f"no fixtures in {FIXTURES / channel}"
