"""netrun's spans (:mod:`netrun.observe`) in the words of OpenTelemetry's GenAI semantic
conventions: span names and attributes, from the attributes the runtime hands over.

Pure data mapping, importing no OpenTelemetry module: the names are the strings the
``opentelemetry-semantic-conventions`` package (0.66b, beside the 1.45 SDK) holds in
``opentelemetry.semconv._incubating.attributes.gen_ai_attributes``; ``tests/test_tracing.py``
fails when one drifts. Attributes netrun adds of its own are ``netrun.*``.

Content (messages, tool arguments and results) is mapped only when ``capture`` is on; what
arrives here is redacted of the run's secrets already (the runtime redacts before it hands
anything to an observer), so capturing it cannot reveal a ``${ENV}`` value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..observe import Span
from ..providers import LITELLM_PROVIDERS

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # deprecated for gen_ai.provider.name, still what many backends read
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
AGENT_NAME = "gen_ai.agent.name"
AGENT_DESCRIPTION = "gen_ai.agent.description"
WORKFLOW_NAME = "gen_ai.workflow.name"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
ERROR_TYPE = "error.type"

OPERATIONS = {"run": "invoke_workflow", "agent": "invoke_agent", "chat": "chat", "tool": "execute_tool"}
"""gen_ai.operation.name of each kind of span (GenAiOperationNameValues)."""

_PROVIDERS = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "xai": "x_ai",
    "mistral": "mistral_ai",
    "watsonx": "ibm.watsonx.ai",
}
"""litellm's provider prefixes whose GenAiProviderNameValues differ; the others are the same word."""

_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
}
"""A model's ``params`` (YAML) that the conventions name, by the name they have there."""


def provider_and_model(model_id: str) -> tuple[str, str]:
    """``openai/gpt-4o-mini`` -> (``openai``, ``gpt-4o-mini``): the provider prefix of a model
    id (litellm's), as the conventions name it; an id without a known prefix is its own model."""
    prefix, _, rest = model_id.partition("/")
    if rest and prefix in LITELLM_PROVIDERS:
        return _PROVIDERS.get(prefix, prefix), rest
    return ("scripted" if prefix == "scripted" else "_OTHER"), model_id


def span_name(span: Span) -> str:
    """``invoke_workflow support``, ``invoke_agent triage``, ``chat gpt-4o-mini``, ``execute_tool search``."""
    name = span.name
    if span.kind == "chat":
        name = provider_and_model(str(span.attributes.get("model") or name))[1]
    return f"{OPERATIONS[span.kind]} {name}"


def _netrun(attributes: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """netrun's own attributes, as ``netrun.<name>``, those set and of a type OTLP carries."""
    return {f"netrun.{n}": attributes[n] for n in names if isinstance(attributes.get(n), (str, int, float, bool))}


def start_attributes(span: Span, capture: bool) -> dict[str, Any]:
    """What a span starts with."""
    a = span.attributes
    out: dict[str, Any] = {OPERATION: OPERATIONS[span.kind], **_netrun(a, "run_id", "network")}
    if span.kind == "run":
        out[WORKFLOW_NAME] = span.name
        out.update(_netrun(a, "depth", "inngest_run_id", "attempt"))
    elif span.kind == "agent":
        out[AGENT_NAME] = span.name
        if a.get("description"):
            out[AGENT_DESCRIPTION] = str(a["description"])
        out.update(_netrun(a, "iteration"))
    elif span.kind == "chat":
        provider, model = provider_and_model(str(a.get("model") or span.name))
        out |= {PROVIDER: provider, SYSTEM: provider, REQUEST_MODEL: model, AGENT_NAME: span.name}
        out.update(_netrun(a, "step", "model"))
        for key, value in (a.get("params") or {}).items():
            if key in _PARAMS and isinstance(value, (int, float, str, list)) and not isinstance(value, bool):
                out[_PARAMS[key]] = [str(v) for v in value] if isinstance(value, list) else value
        request = a.get("request")
        if capture and request is not None:
            system, messages = _input_messages(getattr(request, "messages", []) or [])
            out[INPUT_MESSAGES] = _json(messages)
            if system:
                out[SYSTEM_INSTRUCTIONS] = _json(system)
    elif span.kind == "tool":
        out |= {TOOL_NAME: span.name, TOOL_TYPE: "function"}
        if a.get("description"):
            out[TOOL_DESCRIPTION] = str(a["description"])
        if a.get("call_id"):
            out[TOOL_CALL_ID] = str(a["call_id"])
        out.update(_netrun(a, "step", "kind"))
        if capture and "args" in a:
            out[TOOL_ARGUMENTS] = _json(a["args"])
    return out


def end_attributes(span: Span, capture: bool) -> dict[str, Any]:
    """What a span learnt by its end (a completion's usage, a tool's outcome, a run's status)."""
    a = span.attributes
    out: dict[str, Any] = {}
    if span.kind == "run" and a.get("status"):
        out["netrun.status"] = str(a["status"])
    elif span.kind == "chat" and isinstance(a.get("completion"), dict):
        done = a["completion"]
        usage = done.get("usage") or {}
        out[INPUT_TOKENS] = int(usage.get("prompt") or 0)
        out[OUTPUT_TOKENS] = int(usage.get("completion") or 0)
        if done.get("model"):
            out[RESPONSE_MODEL] = provider_and_model(str(done["model"]))[1]
        if done.get("finish_reason"):
            out[FINISH_REASONS] = [str(done["finish_reason"])]
        out["netrun.cost"] = float(done.get("cost") or 0.0)
        if capture:
            out[OUTPUT_MESSAGES] = _json([_output_message(done)])
    elif span.kind == "tool" and isinstance(a.get("outcome"), dict):
        outcome = a["outcome"]
        if capture and outcome.get("result") is not None:
            out[TOOL_RESULT] = _json(outcome["result"])
    if span.error is not None:
        out[ERROR_TYPE] = error_type(span)
    return out


def error_type(span: Span) -> str:
    """A low-cardinality class of the failure (the conventions' ``error.type``)."""
    if span.exception is not None:
        return type(span.exception).__name__
    return {"tool": "tool_error", "run": "run_failed", "agent": "agent_failed"}.get(span.kind, "_OTHER")


def event_attributes(attributes: Mapping[str, Any], capture_content: bool = False) -> dict[str, Any]:
    """A routing decision's details as ``netrun.*`` event attributes (None dropped: no agent =
    stop). How it was decided keeps an LLM router's reason, the model's words, only when
    content is captured: otherwise its kind (``llm``, ``llm: finish``) and netrun's own text."""
    found = _netrun(attributes, *attributes)
    how = found.get("netrun.how")
    if isinstance(how, str) and not capture_content and how.startswith("llm") and not _OWN_LLM_HOW.fullmatch(how):
        found["netrun.how"] = "llm: finish" if how.startswith("llm: finish") else "llm"
    return found


_OWN_LLM_HOW = re.compile(r"llm(: finish)?|llm: no valid agent after \d+ attempts")
"""The LLM router's decisions as netrun words them, with no reason of the model's in them."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An OpenAI chat message's content and tool calls as the conventions' message parts."""
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        parts += [{"type": "text", "content": p.get("text", "")} for p in content if isinstance(p, dict) and "text" in p]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts.append(
            {"type": "tool_call", "id": call.get("id"), "name": function.get("name"), "arguments": function.get("arguments")}
        )
    if message.get("role") == "tool":
        return [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": content}]
    return parts


def _input_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system instructions, the other messages) in the conventions' form."""
    system: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "system":
            system += _parts(m)
        else:
            rest.append({"role": m.get("role"), "parts": _parts(m)})
    return system, rest


def _output_message(done: Mapping[str, Any]) -> dict[str, Any]:
    calls = [
        {"id": c.get("id"), "function": {"name": c.get("name"), "arguments": c.get("arguments")}}
        for c in done.get("tool_calls") or []
    ]
    message = {"role": "assistant", "parts": _parts({"content": done.get("text") or "", "tool_calls": calls})}
    message["finish_reason"] = done.get("finish_reason") or ("tool_call" if calls else "stop")
    return message


__all__ = ["OPERATIONS", "end_attributes", "event_attributes", "provider_and_model", "span_name", "start_attributes"]
