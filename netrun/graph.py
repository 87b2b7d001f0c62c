"""A network's topology as Mermaid or Graphviz text (``netrun graph``).

Drawn from the validated spec alone (nothing runs): the router's rules as labelled edges
to the agents (or to the end), the edges an LLM routing agent may take (dashed), each
agent's tools and MCP servers, waits for events and approvals, and networks used as tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import NetworkSpec
from .spec.tools import EventTool, HttpTool, NetworkTool, StateTool, WaitTool


@dataclass
class Node:
    id: str
    label: str
    shape: str
    """start | stop | router | agent | tool | wait | network | server"""


@dataclass
class Edge:
    source: str
    target: str
    label: str = ""
    dashed: bool = False


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def node(self, id: str, label: str, shape: str) -> str:
        self.nodes.setdefault(id, Node(id, label, shape))
        return id


def topology(spec: NetworkSpec) -> Graph:
    # Node ids by position, not by name: names may hold '-' (invalid in a DOT id) and two
    # names may differ only in '-' and '_'.
    agent_ids = {name: f"agent{i}" for i, name in enumerate(spec.agents)}
    tool_ids = {name: f"tool{i}" for i, name in enumerate(spec.tools)}
    server_ids = {name: f"mcp{i}" for i, name in enumerate(spec.mcp_servers)}

    def _agent(name: str) -> str:
        return agent_ids[name]

    g = Graph()
    g.node("start", "start", "start")
    g.node("router", "router", "router")
    g.edges.append(Edge("start", "router"))
    for name in spec.agents:
        g.node(_agent(name), name, "agent")
        g.edges.append(Edge(_agent(name), "router"))
    router = spec.router
    for i, rule in enumerate(router.rules if router else []):
        if rule.stop:
            g.edges.append(Edge("router", g.node("stop", "stop", "stop"), f"{i + 1}: {rule.if_}"))
        elif rule.agent:
            g.edges.append(Edge("router", _agent(rule.agent), f"{i + 1}: {rule.if_}"))
    fallback = router.fallback() if router is not None else "llm"
    if fallback == "stop":
        g.edges.append(Edge("router", g.node("stop", "stop", "stop"), "otherwise"))
    elif fallback == "llm":
        for name in spec.agents:
            g.edges.append(Edge("router", _agent(name), "LLM router", dashed=True))
        g.edges.append(Edge("router", g.node("stop", "stop", "stop"), "LLM router: finish", dashed=True))
    else:
        g.edges.append(Edge("router", _agent(fallback), "otherwise"))
    for name, agent in spec.agents.items():
        for ref in agent.tools:
            if "." in ref:
                server, tool = ref.split(".", 1)
                if server in server_ids:
                    g.edges.append(Edge(_agent(name), _server(g, spec, server, server_ids[server]), tool))
                continue
            tool_spec = spec.tools.get(ref)
            if tool_spec is not None:
                g.edges.append(Edge(_agent(name), _tool(g, ref, tool_spec, tool_ids[ref])))
        for server in agent.mcp_servers:
            if server in server_ids:
                g.edges.append(Edge(_agent(name), _server(g, spec, server, server_ids[server]), "all tools"))
    return g


def _server(g: Graph, spec: NetworkSpec, name: str, id: str) -> str:
    transport = getattr(spec.mcp_servers.get(name), "transport", "?")
    approval = getattr(spec.mcp_servers.get(name), "approval", None)
    gated = " + approval" if approval is not None and approval != "none" else ""
    return g.node(id, f"MCP {name} ({transport}){gated}", "server")


def _tool(g: Graph, name: str, spec: object, id: str) -> str:
    approval = getattr(spec, "approval", None)
    gated = " + approval" if approval is not None and approval != "none" else ""
    if isinstance(spec, WaitTool):
        return g.node(id, f"{name}: waits for {spec.wait_for_event.event}{gated}", "wait")
    if isinstance(spec, EventTool):
        return g.node(id, f"{name}: sends {spec.event.name}{gated}", "wait" if gated else "tool")
    if isinstance(spec, NetworkTool):
        target = spec.network if isinstance(spec.network, str) else spec.network.name
        return g.node(id, f"{name}: runs network {target}{gated}", "network")
    if isinstance(spec, HttpTool):
        return g.node(id, f"{name}: HTTP {spec.http.method}{gated}", "wait" if gated else "tool")
    if isinstance(spec, StateTool):
        return g.node(id, f"{name}: sets {', '.join(spec.state)}{gated}", "wait" if gated else "tool")
    return g.node(id, name + gated, "wait" if gated else "tool")


_MERMAID_SHAPES = {
    "start": '(("{}"))',
    "stop": '(("{}"))',
    "router": '{{"{}"}}',
    "agent": '["{}"]',
    "tool": '[/"{}"/]',
    "wait": '{{{{"{}"}}}}',
    "network": '[["{}"]]',
    "server": '[("{}")]',
}


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: entity codes for what Mermaid would read as
    markup or as the end of the label ('#' first: it starts every entity code)."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(char, code)
    return text.replace("\n", " ")


def mermaid(spec: NetworkSpec) -> str:
    g = topology(spec)
    out = ["flowchart TD"]
    for node in g.nodes.values():
        out.append(f"  {node.id}" + _MERMAID_SHAPES[node.shape].format(_mermaid_text(node.label)))
    for e in g.edges:
        arrow = "-.->" if e.dashed else "-->"
        label = f'|"{_mermaid_text(e.label)}"|' if e.label else ""
        out.append(f"  {e.source} {arrow}{label} {e.target}")
    return "\n".join(out)


_DOT_SHAPES = {
    "start": "circle",
    "stop": "doublecircle",
    "router": "diamond",
    "agent": "box",
    "tool": "parallelogram",
    "wait": "hexagon",
    "network": "box3d",
    "server": "cylinder",
}


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(spec: NetworkSpec) -> str:
    g = topology(spec)
    out = [
        f"digraph {_dot_text(spec.name)} {{",
        "  rankdir=TB;",
        '  node [fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in g.nodes.values():
        out.append(f"  {node.id} [label={_dot_text(node.label)}, shape={_DOT_SHAPES[node.shape]}];")
    for e in g.edges:
        attrs = [f"label={_dot_text(e.label)}"] if e.label else []
        if e.dashed:
            attrs.append("style=dashed")
        out.append(f"  {e.source} -> {e.target}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out)
