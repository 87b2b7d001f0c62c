"""The README's table of examples tells the truth: every network in networks/ has a row, and
every feature a row names is in its file (issue 11, item 8)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from .conftest import REPO

Check = Callable[[dict[str, Any]], bool]


def _tools(net: dict[str, Any]) -> list[dict[str, Any]]:
    return list((net.get("tools") or {}).values())


def _triggers(net: dict[str, Any]) -> list[dict[str, Any]]:
    trigger = net.get("trigger")
    return [] if trigger is None else trigger if isinstance(trigger, list) else [trigger]


def _model(net: dict[str, Any]) -> dict[str, Any]:
    model = net.get("model")
    return model if isinstance(model, dict) else {}


def _function(net: dict[str, Any]) -> dict[str, Any]:
    return net.get("function") or {}


def _keys(net: dict[str, Any]) -> list[str]:
    fn = _function(net)
    return [str(c.get("key", "")) for c in fn.get("concurrency") or [] if isinstance(c, dict)] + [
        str((fn.get("rate_limit") or {}).get("key", ""))
    ]


FEATURES: dict[str, Check] = {
    "database administrator": lambda n: "dba" in n["agents"],
    "security expert": lambda n: "security" in n["agents"],
    "state rules": lambda n: any("state." in str(r.get("if", "")) for r in (n.get("router") or {}).get("rules", [])),
    "state routing": lambda n: any("state." in str(r.get("if", "")) for r in (n.get("router") or {}).get("rules", [])),
    "included fragment": lambda n: bool(n.get("include")),
    "event and cron triggers": lambda n: {"event", "cron"} <= {k for t in _triggers(n) for k in t},
    "event trigger": lambda n: any("event" in t for t in _triggers(n)),
    "`input` template": lambda n: any("event" in t and "{{" in str(t.get("input", "")) for t in _triggers(n)),
    "model parameters": lambda n: bool(_model(n).get("params")),
    "`${ENV}` key": lambda n: "${" in str(_model(n).get("api_key", "")),
    "fallbacks": lambda n: bool(_model(n).get("fallbacks")),
    "run limits": lambda n: bool(n.get("limits")),
    "concurrency": lambda n: bool(_function(n).get("concurrency")),
    "per-tenant": lambda n: any("account" in k or "tenant" in k for k in _keys(n)),
    "per-user": lambda n: any("user" in k for k in _keys(n)),
    "per-customer": lambda n: any("customer" in k for k in _keys(n)),
    "throttle": lambda n: bool(_function(n).get("throttle")),
    "cancel": lambda n: bool(_function(n).get("cancel")),
    "rate limit": lambda n: bool(_function(n).get("rate_limit")),
    "LLM router": lambda n: (n.get("router") or {}).get("otherwise") == "llm",
    "`wait_for_event` tool": lambda n: any("wait_for_event" in t for t in _tools(n)),
    "MCP server": lambda n: bool(n.get("mcp_servers")),
    "over stdio": lambda n: any(s.get("transport") == "stdio" for s in (n.get("mcp_servers") or {}).values()),
    "`mcp-server-time`": lambda n: any(s.get("command") == "mcp-server-time" for s in (n.get("mcp_servers") or {}).values()),
    "HTTP tools": lambda n: any("http" in t for t in _tools(n)),
    "`${ENV}` secrets": lambda n: any("${" in str((t.get("http") or {}).get("headers", "")) for t in _tools(n)),
    "approval gate": lambda n: any("approval" in t for t in _tools(n)),
    "another network as a tool": lambda n: any("network" in t for t in _tools(n)),
    "thread and user from the event": lambda n: any("thread" in t and "user" in t for t in _triggers(n)),
    "model from the event": lambda n: "from" in _model(n),
    "`save:` into state": lambda n: any("save" in t for t in _tools(n)),
    "merged": lambda n: any(isinstance(v, dict) and "merge" in v for t in _tools(n) for v in (t.get("save") or {}).values()),
    "gated MCP tools": lambda n: any(s.get("approval") for s in (n.get("mcp_servers") or {}).values()),
    "sandboxed command": lambda n: any((t.get("command") or {}).get("sandbox") for t in _tools(n)),
    "python tool": lambda n: any("python" in t for t in _tools(n)),
    "`setup:` step": lambda n: bool(n.get("setup")),
    "events sent as the run ends": lambda n: bool((n.get("send") or {}).get("completed")),
}
"""A phrase the table may use, and how to see it in a network's YAML."""


def examples_table() -> dict[str, str]:
    """File name -> the 'shows' cell of each row of the README's examples table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("| file | shows |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines():
        match = re.fullmatch(r"\| `([^`]+)` \| (.+) \|", line)
        assert match, f"not a row of the examples table: {line!r}"
        rows[match[1]] = match[2]
    return rows


def test_every_example_network_is_in_the_table() -> None:
    networks = sorted(p.name for p in (REPO / "networks").glob("*.yaml") if not p.name.endswith((".test.yaml", ".replies.yaml")))
    assert sorted(examples_table()) == networks


def test_every_feature_the_table_names_is_in_its_file() -> None:
    wrong = []
    for name, shows in examples_table().items():
        network = yaml.safe_load((REPO / "networks" / name).read_text(encoding="utf-8"))
        for clause in shows.split(";"):
            named = [phrase for phrase in FEATURES if phrase in clause]
            if not named:
                wrong.append(f"{name}: '{clause.strip()}' names no feature this test knows (add it to FEATURES)")
            wrong += [
                f"{name}: '{clause.strip()}': the file has no {phrase}" for phrase in named if not FEATURES[phrase](network)
            ]
    assert wrong == []
