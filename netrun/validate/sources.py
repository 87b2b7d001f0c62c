"""The source lines a report quotes in its snippets, every literal secret masked."""

from __future__ import annotations

import re
from pathlib import Path

from .. import envrefs
from ..check.spec_errors import is_secret_path
from ..includes import DocumentCache
from ..load import Document
from .files import Report
from .partial import get

_SECRET_LINE = re.compile(
    r"((?:api[-_ ]?key|access[-_ ]?key|password|passwd|secret|token|authorization|bearer)['\"]?\s*:\s*)(?![\s'\"]*\$\{)\S.*", re.I
)


_KEY_SHAPES = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{12,}|\bgh[pousr]_[A-Za-z0-9]{20,}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}"
)


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@", re.I)


def _mask_line(line: str) -> str:
    """Mask the values of secret-looking keys, passwords in URLs, and strings shaped like
    well-known API keys, whatever key holds them (a misspelt ``api-key:`` is still a secret)."""
    return _URL_PASSWORD.sub(r"\1***@", _KEY_SHAPES.sub("***", _SECRET_LINE.sub(r"\1***", line)))


def masked_lines(doc: Document) -> dict[str, list[str]]:
    """The document's source lines with every literal secret replaced by ``***``: values
    under ``api_key``, ``headers`` and ``env`` that are not ``${ENV}`` references."""
    out = {file: [_mask_line(line) for line in lines] for file, lines in doc.lines.items()}
    for path in doc.nodes:
        if not is_secret_path(path):
            continue
        span = doc.span(path)
        assert span is not None
        value = get(doc.data, path)
        if not isinstance(value, str) or envrefs.is_reference(value):
            continue
        lines = out.get(span.file)
        if lines is None:
            continue
        for row in range(span.line, span.end_line + 1):
            if 0 < row <= len(lines):
                start = span.col - 1 if row == span.line else len(lines[row - 1]) - len(lines[row - 1].lstrip())
                lines[row - 1] = lines[row - 1][:start] + "***"
    return out


def quote_sources(report: Report, docs: list[Document], cache: DocumentCache) -> None:
    """Fill ``report.sources`` with the masked lines of every file a diagnostic points into:
    from the loaded documents, else read again, but never a file outside the validated folders."""
    wanted = {d.pos.file for d in report.diagnostics}
    for doc in docs:
        if wanted.intersection(doc.lines):
            for file, lines in masked_lines(doc).items():
                if file in wanted:
                    report.sources.setdefault(file, lines)
    for file in wanted - set(report.sources):
        if not cache.inside(Path(file)):
            continue  # never a line of a file outside the validated folders
        try:
            text = Path(file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        report.sources[file] = [_mask_line(line) for line in text.splitlines()]
