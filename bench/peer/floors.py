"""The floors of bench/peer.py: plain N-iteration loops with no framework, one per process.

    python bench/peer/floors.py httpx|aiohttp|openai|litellm N BASE_URL

Each loop makes the calls netrun and AgentKit make for the peer network: an inference that
asks for one tool call, the tool (bump a counter), and the history grows by an assistant
message with its ``tool_calls`` and a ``tool`` message with the result, as OpenAI's chat
format has it. Prints the final counter. Imports happen inside the loops, so each process
pays only for its own library, as a user's script would.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

Json = dict[str, Any]

TOOL: Json = {
    "type": "function",
    "function": {
        "name": "step",
        "description": "Take a step.",
        "parameters": {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"]},
    },
}

Call = Callable[[list[Json]], Json]  # messages -> the assistant message, as a dict


def loop(n: int, call: Call) -> int:
    count = 0
    history: list[Json] = []
    while count < n:
        count = absorb(history, call(prompt(n, count, history)), count)
    return count


def prompt(n: int, count: int, history: list[Json]) -> list[Json]:
    return [{"role": "system", "content": f"Step {count} of {n}."}, {"role": "user", "content": str(n)}, *history]


def absorb(history: list[Json], message: Json, count: int) -> int:
    """Run the tool calls of the assistant ``message`` and add it and their results to
    ``history``; the counter they leave."""
    calls = message.get("tool_calls") or []
    history.append({"role": "assistant", "content": message.get("content"), "tool_calls": calls})
    for tool_call in calls:
        json.loads(tool_call["function"]["arguments"])
        count += 1
        result = json.dumps({"count": count})
        history.append({"role": "tool", "tool_call_id": tool_call["id"], "content": result})
    if not calls:
        raise SystemExit("the model answered without a tool call")
    return count


def httpx_loop(n: int, base: str) -> int:
    import httpx

    with httpx.Client(base_url=base, headers={"authorization": "Bearer sk-bench"}) as client:

        def call(messages: list[Json]) -> Json:
            response = client.post("/chat/completions", json={"model": "fake", "messages": messages, "tools": [TOOL]})
            response.raise_for_status()
            return response.json()["choices"][0]["message"]  # type: ignore[no-any-return]

        return loop(n, call)


def aiohttp_loop(n: int, base: str) -> int:
    """The client netrun's direct model path uses, in an asyncio loop as netrun runs: the
    floor for any Python framework on this path (netrun's loop, journal and redaction come
    on top of it)."""
    import asyncio

    import aiohttp

    async def main() -> int:
        async with aiohttp.ClientSession(headers={"authorization": "Bearer sk-bench"}) as session:
            count = 0
            history: list[Json] = []

            async def call(messages: list[Json]) -> Json:
                body = json.dumps({"model": "fake", "messages": messages, "tools": [TOOL]}).encode()
                async with session.post(f"{base}/chat/completions", data=body, headers={"content-type": "application/json"}) as r:
                    r.raise_for_status()
                    return json.loads(await r.read())["choices"][0]["message"]  # type: ignore[no-any-return]

            while count < n:  # loop(), awaiting each call
                count = absorb(history, await call(prompt(n, count, history)), count)
            return count

    return asyncio.run(main())


def openai_loop(n: int, base: str) -> int:
    import openai

    client = openai.OpenAI(base_url=base, api_key="sk-bench", max_retries=0)

    def call(messages: list[Json]) -> Json:
        response = client.chat.completions.create(model="fake", messages=messages, tools=[TOOL])  # type: ignore[arg-type, list-item]
        return response.choices[0].message.model_dump()

    with client:
        return loop(n, call)


def litellm_loop(n: int, base: str) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else it fetches prices at import
    import litellm

    litellm.suppress_debug_info = True

    def call(messages: list[Json]) -> Json:
        response = litellm.completion(
            model="openai/fake", api_base=base, api_key="sk-bench", messages=messages, tools=[TOOL], max_retries=0
        )
        message = response.choices[0].message
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls or []
        ]
        return {"content": message.content, "tool_calls": calls}

    return loop(n, call)


FLOORS: dict[str, Callable[[int, str], int]] = {
    "httpx": httpx_loop,
    "aiohttp": aiohttp_loop,
    "openai": openai_loop,
    "litellm": litellm_loop,
}

if __name__ == "__main__":
    name, n, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(FLOORS[name](n, base))
