"""`netrun validate` on results into state: a tool's ``save:`` and the state tool's writes
(undeclared fields with "did you mean", append/merge on fields of the wrong type, two
operations in one write, literals that do not fit, ``save:`` on a state tool, templates
reading what ``save:`` does not see), each with its exact message and position."""

from __future__ import annotations

from pathlib import Path

import yaml

from netrun.validate import validate_paths

from .test_save_state import _http_network

BAD = """\
name: bad
model: openai/x
state:
  title: {type: string}
  notes: {type: array}
  count: {type: integer}
agents:
  a: {description: d, system: hi, tools: [fetch, note]}
tools:
  fetch:
    http: {url: "https://example.com/a"}
    save:
      titel: "{{ result.body.title }}"
      count: {merge: "{{ reslt }}"}
      notes: {append: "{{ result.body.items }}", merge: x}
  note:
    state:
      title: {append: x}
      notes: {set: 5}
    save: {count: "1"}
"""


def test_validate_reports_bad_saves_with_their_places(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    (result,) = validate_paths([path]).files
    got = [(d.pos.line, d.pos.col, d.where, d.message) for d in result.diagnostics if d.severity == "error"]
    assert got == [
        (
            13,
            7,
            "tools.fetch.save.titel",
            "state has no field 'titel'; did you mean 'title'? defined state fields: count, notes, title "
            "(declare it under 'state:')",
        ),
        (14, 15, "tools.fetch.save.count.merge", "merge needs an object field: state field 'count' is declared as integer"),
        (
            14,
            26,
            "tools.fetch.save.count.merge",
            "undefined variable 'reslt'; did you mean 'result'? available here: args, event, input, result, run, state",
        ),
        (15, 14, "tools.fetch.save.notes", "a state write names exactly one operation: set, append or merge"),
        (
            18,
            15,
            "tools.note.state.title.append",
            "append needs an array field: state field 'title' is declared as string (write the value itself to replace it)",
        ),
        (19, 20, "tools.note.state.notes.set", "5 is not of type array, as state field 'notes' is declared"),
        (
            20,
            5,
            "tools.note.save",
            "a state tool writes its fields under 'state:'; 'save:' is for the other kinds (their results)",
        ),
    ]


def test_a_valid_file_with_saves_validates_clean(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump({**_http_network("https://example.com"), "name": "ok"}))
    (result,) = validate_paths([path]).files
    assert [d.message for d in result.diagnostics] == []
