"""Where a run's work can be watched from outside: traces and metrics plug in here.

The runtime marks four kinds of work with :func:`span`: one execution of a run by an engine
(``run``: a ``netrun run`` process, a resume, one call from Inngest), an agent's turn
(``agent``), a model call (``chat``) and a tool call (``tool``); a routing decision is an
:func:`event` on the span it happens in. What watches them are observers, installed once
per process (:func:`install`): the OpenTelemetry tracer (:mod:`netrun.tracing`) and the
server's Prometheus metrics. With none installed, a mark costs one check and allocates
nothing: the run loop pays for observation only when someone observes.

Only work done now is marked. A step a resumed run (or a later Inngest call) re-reads from
its journal was observed when it ran; marking it again would count a model call twice in
the metrics and show it twice in a trace.

This module imports nothing but the standard library: every layer that does work (the
runtime, the tools, the engines, the server) marks it here, and the observers, which
import their libraries only when they are installed, live above.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Kind = Literal["run", "agent", "chat", "tool"]
"""What a span stands for: a run's execution, an agent's turn, an inference, a tool call."""


@dataclass(slots=True)
class Span:
    """One piece of work as the observers are told of it: at its start (kind, name, the
    attributes known then) and at its end (what :meth:`set` and :meth:`fail` added)."""

    kind: Kind
    name: str
    """The network (``run``), the agent (``agent``), the model id (``chat``), the tool (``tool``)."""
    attributes: dict[str, Any]
    """What is known of the work, by netrun's names (``run_id``, ``network``, ``agent``,
    ``model``, ``tool``, ``step``, ``prompt_tokens`` ...): each observer maps them to its own
    (the tracer to the GenAI semantic conventions)."""
    parent: Mapping[str, str] | None = None
    """For a ``run``: the W3C trace context it continues (``traceparent``, ``tracestate``),
    recorded with the run when it was started (a REST request's headers), so that every
    execution of one run joins the same trace."""
    error: str | None = None
    """Why the work failed (redacted), as :meth:`fail` said; None: it did not."""
    exception: BaseException | None = None
    """What left the span's block, if anything did: an error, or an engine's control flow (a
    run parking to wait, an Inngest step handing back its result), which is not a failure."""
    started: float = field(default_factory=time.perf_counter)

    def set(self, **attributes: Any) -> None:
        """Add what was learnt while the work went on (a completion's usage, a tool's result)."""
        self.attributes.update(attributes)

    def fail(self, message: str) -> None:
        """The work failed, for this reason (already redacted of the run's secrets)."""
        self.error = message

    @property
    def seconds(self) -> float:
        """How long the work has taken so far."""
        return time.perf_counter() - self.started


class Observer(Protocol):
    """What watches the runtime's work (each method is called synchronously, in the task
    doing the work, so an observer may keep its context in context variables)."""

    def start(self, span: Span) -> Any:
        """The work began; what is returned is handed back to :meth:`end`."""

    def end(self, span: Span, handle: Any) -> None:
        """The work ended (``span.error``: it failed)."""

    def event(self, name: str, attributes: Mapping[str, Any]) -> None:
        """Something happened inside the current work (a routing decision)."""

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Put the current trace context into the headers of an outgoing request."""

    def carrier(self) -> dict[str, str]:
        """The current trace context, to record with a run it starts (may be empty)."""


_observers: list[Observer] = []


def install(observer: Observer) -> None:
    """Watch the work of this process with ``observer`` (once; installing it again is a no-op)."""
    if observer not in _observers:
        _observers.append(observer)


def uninstall(observer: Observer) -> None:
    """Stop watching with ``observer`` (a server shutting down, a test)."""
    if observer in _observers:
        _observers.remove(observer)


def observed() -> bool:
    """Whether anything watches (a caller may skip building attributes when not)."""
    return bool(_observers)


@contextmanager
def span(
    kind: Kind, name: str, attributes: dict[str, Any] | None = None, parent: Mapping[str, str] | None = None
) -> Iterator[Span | None]:
    """Mark the block as one piece of work; yields the :class:`Span` to add to, or None
    when nothing watches (so ``if s:`` guards the attribute building)."""
    if not _observers:
        yield None
        return
    marked = Span(kind, name, attributes or {}, parent)
    handles = []
    for observer in list(_observers):
        try:
            handles.append((observer, observer.start(marked)))
        except Exception:  # an observer that fails is not told of this span's end either
            _failed(observer, "start")
    try:
        yield marked
    except BaseException as exc:
        marked.exception = exc
        raise
    finally:
        for observer, handle in reversed(handles):
            try:
                observer.end(marked, handle)
            except Exception:
                _failed(observer, "end")


def event(name: str, **attributes: Any) -> None:
    """Report something that happened inside the current work (a routing decision)."""
    for observer in list(_observers):
        try:
            observer.event(name, attributes)
        except Exception:
            _failed(observer, "event")


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current trace context to ``headers`` (an HTTP tool's request, an MCP server's)."""
    for observer in list(_observers):
        try:
            observer.inject(headers)
        except Exception:
            _failed(observer, "inject")
    return headers


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers, to record with a run being started here (a
    REST request's ``traceparent``), or {} when nothing traces."""
    found: dict[str, str] = {}
    for observer in list(_observers):
        try:
            found.update(observer.carrier())
        except Exception:
            _failed(observer, "carrier")
    return found


_complained: set[tuple[int, str]] = set()


def _failed(observer: Observer, call: str) -> None:
    """An observer raised: watching must never fail the work watched. Logged once per
    observer and call (with the traceback: it is a bug in the observer, not in the run)."""
    if (id(observer), call) not in _complained:
        _complained.add((id(observer), call))
        logging.getLogger("netrun.observe").warning(
            "%s.%s failed; the run goes on without it", type(observer).__name__, call, exc_info=True
        )


__all__ = ["Kind", "Observer", "Span", "carrier", "event", "inject", "install", "observed", "span", "uninstall"]
