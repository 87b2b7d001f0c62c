"""Text to a :class:`~netrun.load.document.Document`: decoding, parsing, and YAML syntax
errors told the way an author fixes them."""

from __future__ import annotations

import re

import yaml

from ..diagnostics import Diagnostic, Pos
from .builder import MAX_DEPTH, Builder
from .document import Document, LoadError, load_diag
from .yaml12 import Loader


def read_text(raw: bytes, file: str) -> str:
    """Decode a file as UTF-8 text, or explain why it is not text."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadError(
            [
                load_diag(
                    Pos(file, line, col), f"not a UTF-8 text file (byte 0x{raw[exc.start]:02x} cannot be decoded)", "not-text"
                )
            ]
        ) from None
    bad = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise LoadError(
            [
                load_diag(
                    Pos(file, line, col),
                    f"control character {bad.group()!r} in the file; a network file is plain text",
                    "not-text",
                )
            ]
        )
    return text


def load_text(text: str, file: str) -> Document:
    """Parse YAML ``text`` into a :class:`Document`; raise :class:`LoadError` if it is not YAML."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise LoadError([_yaml_error(exc, file, text)]) from None
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        raise LoadError([load_diag(Pos(file, 1, 1), f"invalid YAML: {exc}", "yaml-syntax")]) from None
    except RecursionError:  # pragma: no cover - only the pure-Python composer recurses per level
        raise LoadError([load_diag(Pos(file, 1, 1), f"nested deeper than {MAX_DEPTH} levels", "too-deep")]) from None
    finally:
        loader.dispose()
    doc = Document(file=file, data=None, lines={file: text.splitlines()})
    if node is None:
        return doc
    builder = Builder(doc)
    doc.data = builder.build(node, (), None)
    if builder.errors:
        raise LoadError(sorted(builder.errors, key=Diagnostic.sort_key))
    return doc


# libyaml's messages are terse; these hints say what the author most likely did.
_HINTS = [
    ("found character '\\t' that cannot start any token", "tab character: YAML indents with spaces only"),
    ("found a tab character", "tab character: YAML indents with spaces only"),
    ("mapping values are not allowed", "unexpected ':' (quote a value that contains ': ', or check the indentation)"),
    ("could not find expected ':'", "expected 'key: value' (a ':' is missing, or the indentation is off)"),
    ("did not find expected key", "bad indentation or a stray line: expected another 'key: value' at this level"),
    ("did not find expected '-' indicator", "bad indentation in a list: expected another '- item' at this level"),
    ("found undefined alias", "undefined alias"),
    ("but found another document", "a network file holds one YAML document, found a second one (remove the extra '---')"),
    ("found unexpected end of stream", "unexpected end of file (an unclosed quote or bracket?)"),
    ("found unknown escape character", "unknown escape in a double-quoted string (use single quotes, or write '\\\\')"),
]


def _yaml_error(exc: yaml.MarkedYAMLError, file: str, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    context = exc.context or ""
    lines = text.splitlines()
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    at = lines[line - 1][col - 1 : col] if 0 < line <= len(lines) else ""
    opened = exc.context_mark
    message = problem
    for needle, better in _HINTS:
        if needle in problem or needle in context:
            message = better
            break
    if "cannot start any token" in problem and (at == "\t" or "\t" in (lines[line - 1] if 0 < line <= len(lines) else "")):
        message = "tab character: YAML indents with spaces only"
        col = lines[line - 1].find("\t") + 1
    elif message == "undefined alias" and 0 < line <= len(lines):
        found = re.match(r"\*([^\s,\]}]+)", lines[line - 1][col - 1 :])
        name = found.group(1) if found else "?"
        message = f"undefined alias '*{name}' (no anchor '&{name}' before it)"
    elif opened is not None and ("flow mapping" in context or "flow sequence" in context or "quoted scalar" in context):
        # The problem is where the parser gave up; the cause is what was opened and never closed.
        what = "'{'" if "mapping" in context else "'['" if "sequence" in context else "quote"
        message = f"unclosed {what}: no matching {'closing bracket' if what != 'quote' else 'closing quote'} after it"
        line, col = opened.line + 1, opened.column + 1
    return load_diag(Pos(file, line, col), f"YAML syntax: {message}", "yaml-syntax")
