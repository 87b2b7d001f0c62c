"""Output formats for diagnostics: human (as compilers print), JSON, GitHub annotations."""

from __future__ import annotations

import json
from collections.abc import Callable

from .diagnostics import Diagnostic
from .validate import Report

Style = Callable[..., str]


def plain(text: str, **_: object) -> str:
    """A style that adds no colour."""
    return text


def _snippet(diag: Diagnostic, lines: list[str] | None) -> list[str]:
    if not lines or not 0 < diag.pos.line <= len(lines):
        return []
    text = lines[diag.pos.line - 1].replace("\t", " ")  # secrets are masked by validate
    col = min(max(diag.pos.col, 1), len(text) + 1)
    return [f"  {diag.pos.line:>4} | {text}", "       | " + " " * (col - 1) + "^"]


def human(report: Report, style: Style = plain, quiet: bool = False) -> str:
    out: list[str] = []
    for diag in report.diagnostics:
        colour = "red" if diag.severity == "error" else "yellow"
        where = f"{diag.pos.file}:{diag.pos.line}:{diag.pos.col}"
        path = f"{diag.where}: " if diag.where else ""
        out.append(f"{style(where, bold=True)}: {style(diag.severity, fg=colour, bold=True)}: {path}{diag.message}")
        if not quiet:
            out.extend(
                style(line, dim=True) if i % 2 else line
                for i, line in enumerate(_snippet(diag, report.sources.get(diag.pos.file)))
            )
    n, e, w = len(report.files), report.errors, report.warnings
    files_word = "file" if n == 1 else "files"
    if e or w:
        bad = sum(1 for f in report.files if f.diagnostics)
        parts = [f"{e} error{'s' * (e != 1)}"] + ([f"{w} warning{'s' * (w != 1)}"] if w else [])
        out.append(style(f"{', '.join(parts)} in {bad} of {n} {files_word}", fg="red" if e else "yellow", bold=True))
    else:
        out.append(style(f"{n} {files_word} valid", fg="green", bold=True))
    return "\n".join(out)


def as_json(report: Report) -> str:
    return json.dumps(
        {
            "files": [{"file": f.file, "kind": f.kind, "errors": f.errors, "warnings": f.warnings} for f in report.files],
            "diagnostics": [
                {
                    "file": d.pos.file,
                    "line": d.pos.line,
                    "col": d.pos.col,
                    "path": d.where,
                    "severity": d.severity,
                    "phase": d.phase,
                    "code": d.code,
                    "message": d.message,
                }
                for d in report.diagnostics
            ],
            "errors": report.errors,
            "warnings": report.warnings,
        },
        indent=2,
    )


def escape_annotation(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def github(report: Report) -> str:
    """GitHub Actions workflow commands: one annotation per diagnostic."""
    out = []
    for d in report.diagnostics:
        title = f"netrun {d.phase}: {d.code}"
        path = f"{d.where}: " if d.where else ""
        out.append(
            f"::{d.severity} file={escape_annotation(d.pos.file, True)},line={d.pos.line},col={d.pos.col},title={escape_annotation(title, True)}::{escape_annotation(path + d.message)}"
        )
    out.append(f"{report.errors} errors, {report.warnings} warnings in {len(report.files)} files")
    return "\n".join(out)
