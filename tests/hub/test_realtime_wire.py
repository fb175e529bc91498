"""The hub's Socket.IO wire format: msgspec JSON and the cheaper binary check must give
exactly what python-socketio's own would."""

from __future__ import annotations

import json
from typing import Any

import pytest
import socketio
from hypothesis import given
from hypothesis import strategies as st

from hub import wire_json
from hub.realtime import HubPacket

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30)
with_bytes = st.recursive(
    st.none() | st.integers() | st.text() | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(json_values)
def test_msgspec_json_reads_back_what_the_standard_library_would(value: Any) -> None:
    assert wire_json.loads(wire_json.dumps(value)) == json.loads(json.dumps(value))
    assert wire_json.loads(json.dumps(value)) == json.loads(json.dumps(value))


@given(with_bytes)
def test_binary_check_agrees_with_python_socketio(value: Any) -> None:
    assert HubPacket.data_is_binary(value) == socketio.packet.Packet.data_is_binary(value)


def test_packets_encode_like_python_socketio_and_keep_binary_attachments() -> None:
    data = ["message.created", {"id": 1, "text": "こんにちは <b>", "attachments": []}]
    ours = HubPacket(socketio.packet.EVENT, data=data, namespace="/agent").encode()
    assert json.loads(ours.removeprefix("2/agent,")) == data
    binary = HubPacket(socketio.packet.EVENT, data=["file", {"bytes": b"\x00\x01"}]).encode()
    assert binary[0].startswith("51-") and binary[1] == b"\x00\x01"


@pytest.mark.parametrize("bad", ["{", "[1,", "nul", "[" + "9" * 5000 + "]"])
def test_malformed_or_huge_input_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        wire_json.loads(bad)
