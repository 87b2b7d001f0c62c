"""Property: whatever the file holds, validate reports and exits 0 or 1; it never crashes.

Three sources of input: arbitrary text, mutations of the real examples (so that most
inputs get past the YAML parser into the schema and check phases), and random data
trees built from the format's own field names (so that they reach deep into the spec).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netrun.cli import main

from .conftest import REPO

EXAMPLES = [p.read_text(encoding="utf-8") for p in sorted((REPO / "networks").glob("*.yaml"))]
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
TOKENS = [
    ":",
    ": ",
    "-",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "\t",
    "*a",
    "&a ",
    "!",
    "!!binary ",
    "%",
    "${",
    "${X",
    "}}",
    "{{",
    "{%",
    "<<: ",
    "'",
    '"',
    "\n",
    "\n  ",
    "#",
    "|",
    ">",
    "---\n",
    "~",
    "0x",
    "1e9",
    "\x00",
    "\ufeff",
    "é",
    "🙂",
    "name",
    "agents",
    "tools",
]
FIELDS = [
    "name",
    "agents",
    "tools",
    "router",
    "rules",
    "if",
    "agent",
    "stop",
    "system",
    "model",
    "id",
    "state",
    "type",
    "enum",
    "http",
    "url",
    "wait_for_event",
    "network",
    "parameters",
    "mcp_servers",
    "transport",
    "include",
    "function",
    "concurrency",
    "limit",
    "key",
    "trigger",
    "event",
    "cron",
    "input",
    "limits",
    "max_iter",
    "timeout",
    "approval",
    "otherwise",
]


def run_validate(content: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.yaml"
        if isinstance(content, str):
            content = content.encode("utf-8", errors="surrogatepass")
        path.write_bytes(content)
        result = CliRunner().invoke(main, ["validate", str(path)])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert result.exit_code in (0, 1), (result.exit_code, result.output)
        assert "Traceback" not in result.output


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    run_validate(text.encode("utf-8", errors="replace"))


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    run_validate(data)


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "dup_line", "indent"]))
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS) | st.text(max_size=5)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 30)) :]
        elif op == "replace":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at + 1 :]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i]) if op == "dup_line" else lines.__setitem__(
                i, " " * draw(st.integers(0, 6)) + lines[i].lstrip()
            )
            text = "\n".join(lines)
    return text


@SETTINGS
@given(mutated_example())
def test_mutated_examples(text: str) -> None:
    run_validate(text)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=True)
    | st.sampled_from(FIELDS)
    | st.text(max_size=12)
)
trees = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)


@SETTINGS
@given(st.dictionaries(st.sampled_from(FIELDS), trees, min_size=1, max_size=8))
def test_random_trees_of_known_fields(data: dict[str, object]) -> None:
    run_validate(yaml.safe_dump(data, allow_unicode=True))
