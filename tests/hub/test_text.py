"""What text and names may be stored and shown as."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from channels.base import Inbound
from hub.services import Services
from hub.text import clean_name, clean_text

BIDI_CONTROLS = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


@given(st.text())
def test_a_clean_name_has_no_controls_and_cleaning_it_again_changes_nothing(name: str) -> None:
    cleaned = clean_name(name)
    assert clean_name(cleaned) == cleaned
    assert not BIDI_CONTROLS & set(cleaned)
    assert all(unicodedata.category(c) != "Cc" or c in "\t\n\r" for c in cleaned)
    assert cleaned == cleaned.strip()
    # nothing else is taken away: what is left of the name, in order, is all there
    kept = [c for c in name if c not in BIDI_CONTROLS and c == clean_text(c)
            and not "\x80" <= c <= "\x9f"]
    assert cleaned == "".join(kept).strip()


async def test_a_customer_name_cannot_read_backwards_to_the_agent(services: Services) -> None:
    """LINE_nimda behind an override shows as "admin_ENIL" in a browser."""
    result = await services.ingestor.ingest(Inbound(
        channel="web", identity_kind="web", identity_value="v-bidi", text="hello",
        display_name="\u202eLINE_nimda\u202c "))
    assert result.customer.display_name == "LINE_nimda"
