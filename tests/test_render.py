"""The renderer's caches: compiled templates are kept, but not without bound."""

from __future__ import annotations

from netrun.runtime.render import _CACHED_MAX, Renderer


def test_compiled_templates_are_kept_but_bounded() -> None:
    """An HTTP tool's ``${ENV}`` placeholders make a new template source on every call: a
    long-lived server must not keep every one it ever compiled."""
    renderer = Renderer()
    for i in range(_CACHED_MAX + 50):
        assert renderer.render(f"x{{{{ a }}}}{i}", {"a": 1}) == f"x1{i}"
        assert renderer.evaluate(f"a + {i}", {"a": 1}) == 1 + i
        assert renderer.render_pieces(f"p{{{{ a }}}}{i}", {"a": 2}) == [("p", False), ("2", True), (str(i), False)]
    assert len(renderer._templates) == len(renderer._expressions) == len(renderer._marked) == _CACHED_MAX
    assert renderer.render(f"x{{{{ a }}}}{_CACHED_MAX + 49}", {"a": 3}) == f"x3{_CACHED_MAX + 49}"  # the newest is still there
