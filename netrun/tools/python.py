"""The ``python`` tool kind: a Python function, called with the model's arguments.

::

    tools:
      lookup:
        python: tools.orders:lookup          # or {function: ..., timeout: 10s, idempotent: true}

The function is imported from the network's folder or the installed environment
(:mod:`.python_import`) when a run builds its tools. It runs inside the call's step like
every tool: a sync function in a thread of its own, an async one awaited.

* **Arguments.** With ``parameters`` in the file, the model's arguments are checked against
  them (as for every kind) and passed as keyword arguments. Without, the schema is derived
  from the function's signature and type hints (pydantic): that is what the model sees, and
  the arguments are validated (and converted: a ``datetime``, a pydantic model) by it.
* **Context.** A parameter annotated :class:`CallContext` (or named ``ctx`` without an
  annotation) receives the call's context: run id, step id, an idempotency key, a read-only
  copy of the state, the input, the trigger event and the environment. It is not shown to
  the model.
* **Result.** The return value must be JSON (dicts with string keys, lists, strings,
  numbers, booleans, None); anything else is an error result naming the type and where it
  is. An exception is an error result (its type and message, secrets redacted);
  :class:`netrun.RetryStep` retries the step, :class:`netrun.FailRun` fails the run.
* **Timeout.** Past ``timeout`` the model gets an error result. An async function is
  cancelled; a sync function's thread cannot be stopped (Python has no way to), so it runs
  on in the background and what it returns is dropped.
* **Durability rule 6.** A call cut off by a crash is run again on resume only when the tool
  says ``idempotent: true``; otherwise the model is told it may or may not have run
  (:func:`netrun.runtime.tooling.run_tool`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import inspect
import threading
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import FailRun, RetryStep
from ..runtime.args import parameters_schema
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec import NetworkSpec
from ..spec.base import parse_duration
from ..spec.tools import PythonCall, PythonTool
from .python_import import PythonImportError, load_function
from .python_values import json_type_problem

USES_BASE_DIR = True
"""The registry passes the network's folder to :func:`build` (the function is imported from it)."""


@dataclass(frozen=True)
class CallContext:
    """What a ``python`` tool's function may know about its call: declare a parameter of this
    type (``def f(city: str, ctx: netrun.CallContext)``) to receive it."""

    run_id: str
    step_id: str
    """The deterministic id of the call's step: the same on every retry and replay."""
    idempotency_key: str
    """Derived from run id and step id: send it to a service that can de-duplicate."""
    input: str
    state: Mapping[str, Any]
    """A read-only copy of the network state when the call started (change state with ``save:``
    or a state tool: a function's return value is its only effect on the run)."""
    event: Mapping[str, Any]
    """The event that started the run (``{}`` for runs started from the command line)."""
    environ: Mapping[str, str]
    """The run's environment (where ``${ENV}`` references are resolved), read-only. The function
    runs in netrun's process and could read ``os.environ`` anyway; any ``${ENV}`` value the
    network references is redacted from the result."""
    network: str


def _is_context(param: inspect.Parameter, hint: Any) -> bool:
    if hint is CallContext:
        return True
    if isinstance(param.annotation, str) and param.annotation.rpartition(".")[2] == "CallContext":
        return True  # a hint that did not resolve (a forward reference): its name is enough
    return param.name == "ctx" and param.annotation is inspect.Parameter.empty


class PythonFunctionTool:
    """A ``python`` tool: the imported function, its schema, how it is called."""

    def __init__(self, name: str, spec: PythonTool, base_dir: Path) -> None:
        call = spec.python if isinstance(spec.python, PythonCall) else PythonCall(function=spec.python)
        self.name = name
        self.ref = call.function
        self.timeout = parse_duration(call.timeout).total_seconds()
        self.idempotent = call.idempotent
        """Read by the loop (durability rule 6): False, an interrupted call is not run again."""
        try:
            self.function = load_function(base_dir, call.function)
        except PythonImportError as exc:
            raise PythonImportError(f"tool {name}: python: {exc}") from None
        self.is_async = inspect.iscoroutinefunction(self.function)
        signature = inspect.signature(self.function)
        try:
            hints = typing.get_type_hints(self.function, include_extras=True)
        except Exception as exc:  # a hint that does not resolve (a name the module does not define)
            if spec.parameters is None:
                raise PythonImportError(
                    f"tool {name}: python: the type hints of {self.ref} do not resolve ({type(exc).__name__}: {exc}); "
                    "fix them, or declare 'parameters' in the file"
                ) from None
            hints = {}
        self.context_param: str | None = None
        params: dict[str, inspect.Parameter] = {}
        for p in signature.parameters.values():
            if _is_context(p, hints.get(p.name)):
                self.context_param = p.name
            elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                params[p.name] = p
            elif p.kind is p.POSITIONAL_ONLY:
                raise PythonImportError(f"tool {name}: python: {self.ref} has the positional-only parameter '{p.name}'")
        doc = inspect.getdoc(self.function) or ""
        self.description = spec.description or doc.split("\n\n")[0].strip() or f"Call {self.ref}."
        self.adapter: Any = None
        if spec.parameters is not None:
            self.parameters = parameters_schema(spec.parameters)
        else:
            self.adapter, self.parameters = _derived_once(self.function, name, params, hints)

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        kwargs = dict(args)
        if self.adapter is not None:
            from pydantic import ValidationError

            try:
                model = self.adapter.model_validate(args)
            except ValidationError as exc:
                return ToolOutcome.failure(_validation_message(exc))
            kwargs = {field: getattr(model, field) for field in type(model).model_fields}
        if self.context_param is not None:
            kwargs[self.context_param] = _context(ctx)
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                if self.is_async:
                    value = await _guarded(self.function(**kwargs))
                else:
                    value = await _in_thread(self.name, self.function, kwargs)
        except (RetryStep, FailRun):
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():  # not a TimeoutError the function raised
                stopped = "it was cancelled" if self.is_async else "its thread runs on, as Python cannot stop a thread"
                return ToolOutcome.failure(f"{self.ref} did not return within {self.timeout:g} s ({stopped})")
            message = str(exc)
            return ToolOutcome.failure(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
        problem = json_type_problem(value)
        if problem is not None:
            return ToolOutcome.failure(f"{self.ref} returned a value that is not JSON: {problem}")
        return ToolOutcome(result=value)


def _stopping(exc: BaseException) -> RuntimeError:
    """What a function's ``sys.exit()`` (or a ``KeyboardInterrupt`` it raises) becomes: an
    error of its call; raised as it is, it would stop the event loop and the whole run."""
    return RuntimeError(f"the function raised {type(exc).__name__}({exc})")


async def _guarded(call: Any) -> Any:
    try:
        return await call
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _stopping(exc) from None


async def _in_thread(name: str, function: Any, kwargs: dict[str, Any]) -> Any:
    """``function(**kwargs)`` in a thread of its own (as ``asyncio.to_thread``, with the
    caller's context variables), a daemon thread: one that hangs past its timeout must not
    hold up the process's exit, as a thread of the loop's default executor would."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():  # timed out: nobody waits for it any more
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        error: BaseException | None
        try:
            value, error = context.run(function, **kwargs), None
        except (SystemExit, KeyboardInterrupt) as exc:  # would stop the event loop, not just the call
            value, error = None, _stopping(exc)
        except BaseException as exc:  # delivered to the awaiting call
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=work, name=f"netrun-python-{name}", daemon=True).start()
    return await future


def _context(ctx: ToolContext) -> CallContext:
    return CallContext(
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        idempotency_key=ctx.idempotency_key,
        input=ctx.input,
        state=MappingProxyType(copy.deepcopy(dict(ctx.state))),
        event=MappingProxyType(copy.deepcopy(dict(ctx.event))),
        environ=MappingProxyType(dict(ctx.environ)),
        network=ctx.network,
    )


_DERIVED: dict[tuple[Any, str], tuple[Any, dict[str, Any]]] = {}
"""Derived schemas by (function, tool name): a run builds its tools anew, a schema is made once
per imported function (a changed module is imported anew: its functions are new keys)."""


def _derived_once(
    function: Any, name: str, params: Mapping[str, inspect.Parameter], hints: Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    try:
        found = _DERIVED.get((function, name))
    except TypeError:  # an unhashable callable: derived every time
        return _derived(name, params, hints)
    if found is None:
        found = _DERIVED[(function, name)] = _derived(name, params, hints)
    return found[0], copy.deepcopy(found[1])


def _derived(name: str, params: Mapping[str, inspect.Parameter], hints: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A pydantic model of the parameters (it validates the arguments) and its JSON Schema
    (what the model sees), from the signature and type hints; a parameter without a hint
    takes any JSON value, one without a default is required."""
    from pydantic import ConfigDict, create_model

    fields: dict[str, Any] = {}
    for pname, p in params.items():
        hint = hints.get(pname, Any)
        fields[pname] = (hint, ... if p.default is inspect.Parameter.empty else p.default)
    try:
        model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        schema = model.model_json_schema()
    except Exception as exc:  # a hint pydantic cannot make a schema of
        raise PythonImportError(
            f"tool {name}: its parameters cannot be derived from the type hints ({type(exc).__name__}: {exc}); "
            "declare 'parameters' in the file, or use JSON-like hints"
        ) from None
    return model, _untitled(schema)


def _untitled(schema: Any) -> Any:
    """The schema without pydantic's ``title`` keys (noise to the model); property names kept."""
    if isinstance(schema, dict):
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "title" and isinstance(value, str):
                continue
            if key in ("properties", "$defs") and isinstance(value, dict):
                out[key] = {k: _untitled(v) for k, v in value.items()}
            else:
                out[key] = _untitled(value)
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("required", [])
        return out
    if isinstance(schema, list):
        return [_untitled(v) for v in schema]
    return schema


def _validation_message(exc: Any) -> str:
    """pydantic's errors as the model reads them: where, and what is wrong (never the value)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(x) for x in error.get("loc", ())) or "arguments"
        parts.append(f"args.{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid arguments"


def build(name: str, spec: PythonTool, network: NetworkSpec, base_dir: Path | None = None) -> PythonFunctionTool:
    return PythonFunctionTool(name, spec, base_dir if base_dir is not None else Path("."))


__all__ = ["CallContext", "PythonFunctionTool", "build"]
