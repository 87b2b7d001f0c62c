"""Check phase, across files: networks that would start each other's runs without end.

A network tool names another network of the same folder; a cycle of them (a -> b -> a, of
any length) makes every run start the next one until the run-time cap, ``limits.depth``,
refuses. That is always a mistake, so a cycle is an error, reported once, at the tool that
closes it (the edge a depth-first walk over the files, in their order, finds going back),
with the whole chain.

Event tools are weaker evidence: a trigger's ``if`` may reject the event, and a templated
event name is known only at run time. An event tool whose literal name triggers a network
that (through network tools and more such events) sends it again is therefore a warning;
the run-time cap is the real defence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ..diagnostics import Diagnostic, Severity, YamlPath
from ..load import Document
from ..spec import NetworkSpec
from ..spec.tools import EventTool, NetworkCall, NetworkTool
from ..spec.trigger import EventTrigger


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    owner: int
    """The index (in the validated files) of the network whose tool this is."""
    path: YamlPath
    via: str | None = None
    """The event name, for an edge an event tool makes."""


def network_targets(spec: NetworkSpec) -> list[tuple[str, YamlPath]]:
    """The networks ``spec``'s network tools run, each with the path of the name that says so."""
    out: list[tuple[str, YamlPath]] = []
    for tool_name, tool in spec.tools.items():
        if isinstance(tool, NetworkTool):
            ref = tool.network
            if isinstance(ref, NetworkCall):
                out.append((ref.name, ("tools", tool_name, "network", "name")))
            else:
                out.append((ref, ("tools", tool_name, "network")))
    return out


def network_cycles(specs: Sequence[NetworkSpec]) -> list[list[str]]:
    """The cycles of network tools among ``specs`` (self-calls included), each as a chain
    of names that ends where it starts; one per edge that closes a cycle."""
    first: dict[str, NetworkSpec] = {}
    for spec in specs:
        first.setdefault(spec.name, spec)
    calls = {name: [_Edge(name, t, 0, path) for t, path in network_targets(spec) if t in first] for name, spec in first.items()}
    names = list(first)
    return [chain for _, chain, _ in _back_edges(names, calls)]


def cycle_diagnostics(
    networks: Sequence[tuple[NetworkSpec, Document] | None], reported: int | None = None
) -> dict[int, list[Diagnostic]]:
    """The cycle errors and warnings of ``networks`` (None: a file with no usable spec),
    by the index of the file each is reported in. The items from ``reported`` on are
    context only (the networks beside a file validated alone, which its network tools
    reach at run time): nothing is reported in them, and a cycle through them is reported
    at a tool of a validated file."""
    reported = len(networks) if reported is None else reported
    index: dict[str, int] = {}
    specs: dict[str, NetworkSpec] = {}
    for i, item in enumerate(networks):
        if item is not None and item[0].name not in index:  # a duplicate name is an error of its own
            index[item[0].name], specs[item[0].name] = i, item[0]
    calls: dict[str, list[_Edge]] = {name: [] for name in index}
    sends: dict[str, list[_Edge]] = {name: [] for name in index}
    triggered: dict[str, list[str]] = {}
    for name, spec in specs.items():
        for trigger in spec.trigger if isinstance(spec.trigger, list) else [spec.trigger] if spec.trigger else []:
            if isinstance(trigger, EventTrigger) and name not in triggered.setdefault(trigger.event, []):
                triggered[trigger.event].append(name)
    for name, spec in specs.items():
        i = index[name]
        for target, path in network_targets(spec):
            # A network calling itself is reported by the checker of that one file.
            if target in index and target != name:
                calls[name].append(_Edge(name, target, i, path))
        for tool_name, tool in spec.tools.items():
            if isinstance(tool, EventTool) and "{{" not in tool.event.name and "{%" not in tool.event.name:
                event = tool.event.name.strip()
                sends[name].extend(
                    _Edge(name, t, i, ("tools", tool_name, "event", "name"), event) for t in triggered.get(event, [])
                )
    out: dict[int, list[Diagnostic]] = {}

    def report(edge: _Edge, message: str, code: str, severity: Severity) -> None:
        item = networks[edge.owner]
        assert item is not None
        out.setdefault(edge.owner, []).append(
            Diagnostic(item[1].pos(edge.path), message, edge.path, severity=severity, code=code)
        )

    for edge, chain, along in _back_edges(list(index), calls):
        if edge.owner >= reported:  # closed in a file beside the validated ones: say it at one of theirs
            edge = next((e for e in along if e.owner < reported), edge)
            if edge.owner >= reported:
                continue
        report(
            edge,
            f"network tools call each other in a cycle: {' -> '.join(chain)} (each run would start the next without end)",
            "network-cycle",
            "error",
        )
    both = {name: calls[name] + sends[name] for name in index}
    for name in index:
        if index[name] >= reported:
            continue
        for edge in sends[name]:
            back = _path(both, edge.target, name)
            if back is not None:
                loop = " -> ".join([name, *back])
                report(
                    edge,
                    f"the event {edge.via} starts network '{edge.target}', whose runs send it again: {loop}; runs would start "
                    "each other until limits.depth refuses (unless a trigger's 'if' stops them)",
                    "event-cycle",
                    "warning",
                )
    return out


def _back_edges(order: list[str], edges: dict[str, list[_Edge]]) -> list[tuple[_Edge, list[str], list[_Edge]]]:
    """The edges that close a cycle in a depth-first walk (every cycle has one), each with
    its chain of names and the edges along it. Iterative: a long chain of networks must
    not hit Python's recursion limit."""
    done: set[str] = set()
    found: list[tuple[_Edge, list[str], list[_Edge]]] = []
    for root in order:
        if root in done:
            continue
        stack: list[tuple[str, int, _Edge | None]] = [(root, 0, None)]
        on_stack = {root: 0}
        while stack:
            node, i, came = stack[-1]
            if i == len(edges[node]):
                stack.pop()
                del on_stack[node]
                done.add(node)
                continue
            stack[-1] = (node, i + 1, came)
            edge = edges[node][i]
            if edge.target in on_stack:
                start = on_stack[edge.target]
                along = [e for _, _, e in stack[start + 1 :] if e is not None] + [edge]
                found.append((edge, [n for n, _, _ in stack[start:]] + [edge.target], along))
            elif edge.target not in done:
                on_stack[edge.target] = len(stack)
                stack.append((edge.target, 0, edge))
    return found


def _path(edges: dict[str, list[_Edge]], start: str, goal: str) -> list[str] | None:
    """The shortest chain of networks from ``start`` to ``goal`` (both included), or None."""
    before: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            chain: list[str] = []
            at: str | None = node
            while at is not None:
                chain.append(at)
                at = before[at]
            return chain[::-1]
        for edge in edges[node]:
            if edge.target not in before:
                before[edge.target] = node
                queue.append(edge.target)
    return None
