"""The loader: positions, YAML 1.2 scalars, anchors and merge keys, and what it refuses."""

from __future__ import annotations

import pytest

from netrun.diagnostics import Pos
from netrun.load import LoadError, load_text, read_text


def test_every_node_has_its_position() -> None:
    doc = load_text("name: x\nagents:\n  triage:\n    tools: [a, b]\n", "f.yaml")
    assert doc.pos(("agents", "triage", "tools", 1)) == Pos("f.yaml", 4, 16)
    assert doc.pos(("agents", "triage"), key=True) == Pos("f.yaml", 3, 3)
    # A path that does not exist falls back to its nearest ancestor.
    assert doc.pos(("agents", "triage", "missing")) == Pos("f.yaml", 4, 5)


def test_scalars_follow_yaml_1_2() -> None:
    doc = load_text("a: on\nb: yes\nc: 2024-01-01\nd: true\ne: 0x1f\nf: 1.5\ng: ~\nh: .inf\non: 1\n", "f.yaml")
    assert doc.data == {
        "a": "on",
        "b": "yes",
        "c": "2024-01-01",
        "d": True,
        "e": 31,
        "f": 1.5,
        "g": None,
        "h": float("inf"),
        "on": 1,
    }


def test_anchors_aliases_and_merge_keys() -> None:
    text = "base: &b {model: m, system: s}\nagent:\n  <<: *b\n  system: own\nmany:\n  <<: [{x: 1}, {x: 2, y: 2}]\nlist: &l [1, 2]\ncopy: *l\n"
    doc = load_text(text, "f.yaml")
    assert doc.data["agent"] == {"model": "m", "system": "own"}
    assert doc.data["many"] == {"x": 1, "y": 2}  # earlier merge sources win
    assert doc.data["copy"] == [1, 2]


def test_duplicate_keys_are_errors_with_both_positions() -> None:
    with pytest.raises(LoadError) as exc:
        load_text("name: a\nagents:\n  x: {system: s}\n  x: {system: t}\nname: b\n", "f.yaml")
    messages = [(d.pos.line, d.pos.col, d.message) for d in exc.value.diagnostics]
    assert messages == [
        (4, 3, "duplicate key 'x' (first defined at line 3); YAML keeps only one, so remove or rename one of them"),
        (5, 1, "duplicate key 'name' (first defined at line 1); YAML keeps only one, so remove or rename one of them"),
    ]


def test_alias_bombs_are_refused() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    with pytest.raises(LoadError) as exc:
        load_text("\n".join(levels) + "\n", "f.yaml")
    assert "expands to more than" in exc.value.diagnostics[0].message


def test_nesting_past_the_limit_is_one_located_error_and_the_limit_itself_loads() -> None:
    from netrun.load import MAX_DEPTH

    with pytest.raises(LoadError) as exc:
        load_text("a: " + "[" * 999 + "]" * 999 + "\n", "f.yaml")  # just under libyaml's own limit (1000)
    (diag,) = exc.value.diagnostics
    assert (diag.pos, diag.message, diag.code, diag.path) == (
        Pos("f.yaml", 1, 4 + MAX_DEPTH),
        f"nested deeper than {MAX_DEPTH} levels",
        "too-deep",
        ("a",),
    )
    doc = load_text("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", "f.yaml")  # the last list at level 100
    depth, value = 1, doc.data["a"]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == MAX_DEPTH


def test_text_positions_inside_block_scalars() -> None:
    doc = load_text("agents:\n  a:\n    system: |\n      line one\n        two {{ x }}\n", "f.yaml")
    path = ("agents", "a", "system")
    assert doc.text_pos(path, 1, 6) == Pos("f.yaml", 5, 13)
    doc = load_text("s: 'ab {{ x }}'\n", "f.yaml")
    assert doc.text_pos(("s",), 0, 6) == Pos("f.yaml", 1, 11)


def test_binary_is_not_text() -> None:
    with pytest.raises(LoadError) as exc:
        read_text(b"name: x\n\xff\xfe\x00", "f.yaml")
    assert exc.value.diagnostics[0].message == "not a UTF-8 text file (byte 0xff cannot be decoded)"
    assert exc.value.diagnostics[0].pos == Pos("f.yaml", 2, 1)


def test_env_references_resolve_with_escapes_and_defaults() -> None:
    from netrun import envrefs

    env = {"HOME": "/root", "TRICKY": "a$${b}${HOME}"}
    assert envrefs.resolve("$${HOME} ${HOME}", env) == "${HOME} /root"
    assert envrefs.resolve("${MISSING:-fallback}", env) == "fallback"
    assert envrefs.resolve("${TRICKY}", env) == "a$${b}${HOME}"  # values are not scanned again
    with pytest.raises(envrefs.MissingEnvError, match="environment variable MISSING is not set"):
        envrefs.resolve("${MISSING}", env)
