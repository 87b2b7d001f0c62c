"""The direct client's request bodies (netrun/models/json_body.py): the same JSON as
json.dumps, with the history's messages encoded once each."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from netrun.models.json_body import BodyEncoder

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(st.lists(st.dictionaries(st.text(max_size=8), _json, max_size=4), max_size=6), st.dictionaries(st.text(max_size=8), _json))
def test_a_body_decodes_to_what_json_dumps_would_send(messages: list[dict[str, Any]], rest: dict[str, Any]) -> None:
    body = {**rest, "messages": messages}
    encoder = BodyEncoder()
    assert json.loads(encoder.encode(body)) == json.loads(json.dumps(body))
    assert json.loads(encoder.encode(body)) == json.loads(json.dumps(body))  # again, from what it kept


def test_a_growing_history_encodes_each_message_once() -> None:
    encoder = BodyEncoder()
    history: list[dict[str, Any]] = []
    encoded: list[Any] = []
    original = encoder._message

    def counting(message: Any) -> str:
        if encoder._seen.get(id(message), (None,))[0] is not message:
            encoded.append(message)
        return original(message)

    encoder._message = counting  # type: ignore[method-assign]
    for turn in range(50):
        history += [
            {"role": "assistant", "content": None, "tool_calls": [{"id": f"c{turn}", "type": "function"}]},
            {"role": "tool", "tool_call_id": f"c{turn}", "content": str(turn)},
        ]
        system = {"role": "system", "content": f"Step {turn}."}  # made anew each call, as the runtime does
        body = {"model": "m", "messages": [system, *history], "tools": [{"type": "function"}]}
        assert json.loads(encoder.encode(body)) == body
    assert len(encoded) == 50 * 2 + 50  # every history message once, every system prompt once


def test_the_cache_starts_again_past_its_limit_and_never_confuses_messages() -> None:
    encoder = BodyEncoder(limit=3)
    for i in range(10):
        body = {"messages": [{"n": i}, {"n": i + 1}]}  # new objects: ids may be reused by the allocator
        assert json.loads(encoder.encode(body)) == body
    assert len(encoder._seen) <= 3
    assert json.loads(encoder.encode({"messages": []})) == {"messages": []}
    assert json.loads(encoder.encode({"model": "x"})) == {"model": "x"}
