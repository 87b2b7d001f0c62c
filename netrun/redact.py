"""The one redaction mechanism: ``${ENV}`` values never leave a run in clear.

Every text that comes from outside netrun (a tool's result or error, an MCP server's
answers and stderr, a model's completion or error, a subprocess) may quote a secret: a
server echoes the header it received, an exception quotes the URL it failed on. So the
runtime passes all of it through one :class:`Secrets` before the text is truncated, stored
(journal, Inngest step output, thread), emitted (SSE, the terminal) or sent (the model)::

    secrets = Secrets.for_definition(spec.model_dump(mode="json"), os.environ)
    secrets.redact("token s3cr3t-value")          # 'token ***'
    secrets.redact_value({"echo": ["s3cr3t-value"]})
    secrets.tail(long_text, 600)                  # redacted *then* cut

What counts as a secret, and why:

- The value of every ``${NAME}`` reference anywhere in the network definition (model keys
  and params, HTTP headers, urls and bodies, MCP env, args, headers and urls, history URLs):
  the design makes ``${ENV}`` *the* way to write a secret, so each one is treated as one,
  wherever it is used. A default (``${NAME:-x}``) is written in the file: not a secret.
- The value of environment variables named like credentials (``OPENAI_API_KEY``,
  ``GITHUB_TOKEN``, ``DB_PASSWORD``...), 8 characters or more: litellm and SDKs read
  provider keys from the environment without a reference, and quote them in errors.
- Values shorter than :data:`MIN_LENGTH` characters are not redacted: replacing ``on`` or
  ``80`` everywhere would corrupt results and hide nothing (a value that short is guessed).

Each value is searched in every form it may be echoed in (:func:`encodings`): plain,
percent-encoded (as ``quote``, ``quote_plus``, httpx's path and query encoders, lower-case
hex too), JSON-escaped, as a Python bytes repr (h11 quotes a bad header that way), and
base64 (HTTP Basic auth, at any offset inside a longer encoded string). Overlapping
occurrences are merged before replacement, so no piece of one survives next to another.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .envrefs import REF
from .secret_forms import MIN_LENGTH, encodings

__all__ = ["MASK", "MIN_LENGTH", "Secrets", "StreamRedactor", "encodings", "redact_logs"]

MASK = "***"
"""What a secret is replaced with."""
_MEMO_FROM, _MEMO_MAX = 256, 2048
"""Texts this long or longer have their redaction remembered (up to this many texts)."""
_NAMED_MIN_LENGTH = 8
"""Unreferenced variables named like credentials are redacted from this length on (``AUTH=on`` is a switch)."""
_DUMP = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
""":meth:`Secrets._clean`'s dump: ``json.dumps`` with these options builds an encoder per call,
a third of the cost of dumping a message."""
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH)(?:$|_)", re.I)


class Secrets:
    """The secret values of a run, and the redaction of text and JSON values against them."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._forms: list[str] = []
        self._json_forms: list[str] = []
        """Each form as it reads inside a JSON dump (see :meth:`_clean`)."""
        self._memo: dict[str, str] = {}
        """Long texts redacted lately, and their redaction: a run sends the model its whole
        history on every inference, the same strings each time (their hash is cached too)."""
        for value in values:
            self.add(value)

    @classmethod
    def for_definition(cls, definition: Any, environ: Mapping[str, str]) -> Secrets:
        """The secrets of a network: the values of the ``${ENV}`` references anywhere in its
        definition (a spec's JSON dump), and credential-named variables of ``environ``."""
        return cls.for_names(references(definition), environ)

    @classmethod
    def for_names(cls, names: Iterable[str], environ: Mapping[str, str]) -> Secrets:
        """The secrets of the variables ``names`` (a network's :func:`references`) and the
        credential-named variables of ``environ``. The same values give the same object, so
        it is shared: don't :meth:`add` to it (a run is made for each execution, on Inngest
        for each request; building the forms each time would cost every one)."""
        values = tuple(v for v in (environ.get(n) for n in names) if v)
        named = tuple(v for k, v in environ.items() if _SECRET_NAME.search(k) and len(v) >= _NAMED_MIN_LENGTH)
        key = (values, named)
        found = _BY_VALUES.get(key)
        if found is None:
            if len(_BY_VALUES) >= 256:
                _BY_VALUES.pop(next(iter(_BY_VALUES)))
            found = _BY_VALUES[key] = cls((*values, *named))
        return found

    def add(self, value: str) -> None:
        """Treat ``value`` as a secret too (ignored when shorter than :data:`MIN_LENGTH`)."""
        if len(value) < MIN_LENGTH or value in self._values:
            return
        self._values.add(value)
        self._forms = sorted(set(self._forms) | encodings(value), key=len, reverse=True)
        # JSON escapes character by character, so a form inside a string is this inside its dump.
        self._json_forms = [json.dumps(f, ensure_ascii=False)[1:-1] for f in self._forms]
        self._memo = {}

    def __bool__(self) -> bool:
        return bool(self._forms)

    @property
    def longest(self) -> int:
        """The length of the longest form: how far a secret may reach across a cut."""
        return len(self._forms[0]) if self._forms else 0

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Where secrets occur in ``text``, overlapping occurrences merged."""
        spans: list[tuple[int, int]] = []
        for form in self._forms:
            at = text.find(form)
            while at >= 0:
                spans.append((at, at + len(form)))
                at = text.find(form, at + 1)
        if not spans:
            return spans
        spans.sort()
        merged = [spans[0]]
        for start, end in spans[1:]:
            if start <= merged[-1][1]:  # touching or overlapping: one masked run
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged

    def redact(self, text: str) -> str:
        """``text`` with every secret, in every form, replaced by ``***``."""
        if not self._forms or not text:
            return text
        if len(text) < _MEMO_FROM:
            return self._redact(text)
        clean = self._memo.get(text)
        if clean is None:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.pop(next(iter(self._memo)))  # the oldest
            clean = self._memo[text] = self._redact(text)
        return clean

    def _redact(self, text: str) -> str:
        spans = self._spans(text)
        if not spans:
            return text
        out, pos = [], 0
        for start, end in spans:
            out += [text[pos:start], MASK]
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def redact_value(self, value: Any) -> Any:
        """A JSON-like value with every string (keys included) redacted; other values as they
        are. A value holding no secret is returned itself, not a copy."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict | list | tuple) and (not value or self._clean(value)):
            return value
        return self._redact_value(value)

    def _clean(self, value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
        """Whether no string of ``value`` (keys included) holds a secret, told from one dump
        of it: a model request carries the run's whole history, and walking it string by
        string on every inference made each iteration cost more than the one before. JSON
        escapes each character on its own, so a form inside a string is its JSON form inside
        the dump (a match across two strings only sends the value the slow way)."""
        try:
            text = _DUMP(value)
        except (TypeError, ValueError, RecursionError):  # not JSON (a set, bytes; a cycle): walked instead
            return False
        return not any(form in text for form in self._json_forms)

    def _redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(k) if isinstance(k, str) else k: self._redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._redact_value(v) for v in value)
        return value

    def tail(self, text: str, limit: int, *, starts_cut: bool = False) -> str:
        """The last ``limit`` characters of ``text`` once redacted: redaction comes first, so
        a secret crossing the cut is masked whole instead of leaking its second half.

        ``starts_cut``: ``text`` was itself read from the middle of something longer (a file's
        tail), so its first characters may be the end of a secret that cannot be recognised:
        they are dropped (pass text :attr:`longest` characters longer than needed).
        """
        if starts_cut and self._forms:
            text = text[self.longest :]
        return self.redact(text)[-limit:] if limit > 0 else ""

    def head(self, text: str, limit: int) -> str:
        """The first ``limit`` characters of ``text`` once redacted."""
        return self.redact(text)[:limit]

    def scrub(self, exc: BaseException) -> BaseException:
        """Redact an exception's message in place (its type, and so how it is retried, stays),
        and those of the exceptions it chains (``__cause__``, ``__context__``, a group's): a
        traceback (Inngest records one with a failed step) prints them all."""
        if self._forms:
            self._scrub(exc, set())
        return exc

    def _scrub(self, exc: BaseException, seen: set[int]) -> None:
        if id(exc) in seen:
            return
        seen.add(id(exc))
        exc.args = tuple(self.redact(a) if isinstance(a, str) else a for a in exc.args)
        # Text some exceptions keep apart from args (OSError prints strerror and filename).
        for attr in ("message", "msg", "strerror", "filename", "filename2"):
            held = getattr(exc, attr, None)
            if isinstance(held, str):
                with contextlib.suppress(AttributeError, TypeError):  # a read-only property
                    setattr(exc, attr, self.redact(held))
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            exc.__notes__ = [self.redact(n) if isinstance(n, str) else n for n in notes]
        try:
            text = str(exc)
        except Exception:  # a broken __str__: nothing to show, nothing to leak
            text = ""
        clean = self.redact(text)
        if clean != text:  # its __str__ reads text held elsewhere: the exception shows the clean one
            with contextlib.suppress(TypeError):  # a built-in type's instance keeps its class
                exc.__class__ = _masked(type(exc))
                exc.__dict__["_netrun_redacted"] = clean
        for inner in (exc.__cause__, exc.__context__, *getattr(exc, "exceptions", ())):
            if isinstance(inner, BaseException):
                self._scrub(inner, seen)

    def stream(self, sink: Callable[[str], None]) -> StreamRedactor:
        """A writer passing streamed text to ``sink`` redacted (see :class:`StreamRedactor`)."""
        return StreamRedactor(self, sink)


_MASKED: dict[type[BaseException], type[BaseException]] = {}  # not functools.cache: mypy sees no class as Hashable


def _masked(cls: type[BaseException]) -> type[BaseException]:
    """``cls`` whose ``str()`` is the redacted text :meth:`Secrets.scrub` kept (same name, a subclass)."""
    if (found := _MASKED.get(cls)) is not None:
        return found

    def __str__(self: BaseException) -> str:  # noqa: N807
        return str(self.__dict__.get("_netrun_redacted", ""))

    # setdefault: two threads masking one class at once keep one subclass
    return _MASKED.setdefault(
        cls, type(cls.__name__, (cls,), {"__str__": __str__, "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    )


class StreamRedactor:
    """Redacts text that arrives in pieces (a model's streamed deltas).

    A secret may be split across two pieces, and neither piece alone contains it; so the
    last ``longest - 1`` characters are held back until more text (or :meth:`flush`) shows
    whether they begin a secret. What is written to ``sink`` is always redacted.
    """

    def __init__(self, secrets: Secrets, sink: Callable[[str], None]) -> None:
        self.secrets = secrets
        self.sink = sink
        self._pending = ""

    def write(self, piece: str) -> None:
        if not self.secrets:
            if piece:
                self.sink(piece)
            return
        text = self._pending + piece
        cut = max(0, len(text) - (self.secrets.longest - 1))
        for start, end in self.secrets._spans(text):
            if start < cut < end:  # never split a secret: hold it back whole
                cut = start
        self._pending = text[cut:]
        if cut:
            self.sink(self.secrets.redact(text[:cut]))

    def flush(self) -> None:
        text, self._pending = self._pending, ""
        if text:
            self.sink(self.secrets.redact(text))


def references(definition: Any) -> tuple[str, ...]:
    """The variables a definition (a spec's JSON dump) references as ``${NAME}``, in order,
    once each; ``$${NAME}`` is a literal, not a reference."""
    names: dict[str, None] = {}
    for text in _strings(definition):
        for m in REF.finditer(text):
            before = text[: m.start()]
            if not (len(before) - len(before.rstrip("$"))) % 2:
                names[m.group("name")] = None
    return tuple(names)


_BY_VALUES: dict[tuple[tuple[str, ...], tuple[str, ...]], Secrets] = {}

_LOGGED = Secrets()
"""Every secret of every run of this process, kept out of its log records."""
_factory_installed = False


def redact_logs(secrets: Secrets) -> None:
    """Keep ``secrets`` out of every log record this process makes, whoever logs it.

    A run's text passes through libraries that log at debug level what they send and get
    (the openai SDK, litellm, httpx, the MCP SDK), into handlers netrun does not own (the
    host application's, uvicorn's, a test's). So the records themselves are cleaned, where
    they are made: a log record factory redacts the formatted message (and a traceback) of
    each record that is emitted at all (a disabled level makes no record).
    """
    global _factory_installed
    for value in secrets._values:
        _LOGGED.add(value)
    if _factory_installed:
        return
    _factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not _LOGGED:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it later, as it would have
            return record
        clean = _LOGGED.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = _LOGGED.redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
