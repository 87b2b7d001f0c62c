"""``netrun new NAME``: a network file and its test file that validate and pass as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UsageError
from .spec.base import NAME_RE

NETWORK = """\
# yaml-language-server: $schema={schemas}/network.schema.json
name: {name}
description: Answers a question, then a reviewer checks the answer.
model: openai/gpt-4o-mini       # any litellm model id; the key comes from OPENAI_API_KEY
max_iter: 4
state:
  answer: {{type: string}}
  approved: {{type: boolean, default: false}}
agents:
  writer:
    description: Writes the answer.
    system: |
      Answer the user's question in a few sentences, then call save_answer.
    tools: [save_answer]
  reviewer:
    description: Reviews the answer.
    system: |
      Review this answer to "{{{{ input }}}}":
      {{{{ state.answer }}}}
      Call approve when it is correct and clear.
    tools: [approve]
router:
  rules:
    - if: state.approved
      stop: true
    - if: not state.answer
      agent: writer
    - if: "true"
      agent: reviewer
tools:
  save_answer:
    description: Save the answer.
    parameters: {{answer: {{type: string}}}}
    state: {{answer: "{{{{ args.answer }}}}"}}
  approve:
    description: Approve the answer.
    state: {{approved: true}}
  # A command changes things outside netrun: have a human approve each call, and run it in
  # a bubblewrap sandbox (no network, one writable work folder). List it in an agent's tools.
  # run_tests:
  #   description: Run the test suite.
  #   command:
  #     argv: [python3, -m, pytest, -q, "{{{{ args.path }}}}"]  # each item is one argument: no shell
  #     timeout: 5m
  #     ok_codes: [0, 1]                                     # failing tests are a result, not an error
  #     sandbox: true
  #   parameters: {{path: {{type: string}}}}
  #   approval: required
"""

TESTS = """\
# yaml-language-server: $schema={schemas}/test.schema.json
# Test cases of {name}.yaml: `netrun test {name}.yaml` (offline: the model's replies are scripted)
cases:
  the writer answers and the reviewer approves:
    input: What is durable execution?
    replies:
      writer:
        - text: Durable execution records each step, so a crashed run resumes where it stopped.
          tool_calls:
            - {{name: save_answer, args: {{answer: Each step is recorded; a crashed run resumes where it stopped.}}}}
      reviewer:
        - text: Correct and clear.
          tool_calls: [{{name: approve, args: {{}}}}]
    expect:
      route: [writer, reviewer]
      tool_calls:
        - {{name: save_answer}}
        - {{name: approve}}
      state: {{approved: true}}
      stop_reason: router
"""


class ScaffoldError(UsageError, phase="cli"):
    """The name or the place is not usable (a usage error)."""


def scaffold(name: str, folder: Path | None = None) -> list[Path]:
    if not re.match(NAME_RE, name):
        raise ScaffoldError(
            f"'{name}' is not a valid network name: use letters, digits, '_' and '-', starting with a letter or '_'"
        )
    target = folder or (Path("networks") if Path("networks").is_dir() else Path("."))
    files = [(target / f"{name}.yaml", NETWORK), (target / f"{name}.test.yaml", TESTS)]
    for path, _ in files:
        if path.exists():
            raise FileExistsError(0, "exists", str(path))
    target.mkdir(parents=True, exist_ok=True)
    schemas = _schemas_for(target.resolve())
    if not (schemas / "network.schema.json").exists():  # editors validate against the schema the modeline names
        from .schema import render_schemas

        schemas.mkdir(exist_ok=True)
        for file, text in render_schemas().items():
            (schemas / file).write_text(text, encoding="utf-8")
    relative = os.path.relpath(schemas, target.resolve()).replace(os.sep, "/")
    for path, template in files:
        path.write_text(template.format(name=name, schemas=relative), encoding="utf-8")
    return [path for path, _ in files]


def _schemas_for(target: Path) -> Path:
    """The project's schemas/ folder: the nearest one at or above the target or the working
    directory; else a new one in the working directory."""
    for start in (target, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "schemas" / "network.schema.json").exists():
                return folder / "schemas"
    return Path.cwd().resolve() / "schemas"
