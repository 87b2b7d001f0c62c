"""The function names models see for tools: one place, light enough for `netrun test`.

MCP tools are offered as ``{server}__{tool}``; agents and test files may write them as
``server.tool``.
"""

from __future__ import annotations

import hashlib
import re

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def function_name(server: str, tool: str) -> str:
    """The function name the model sees for ``tool`` of ``server``: ``{server}__{tool}``.

    The double underscore keeps the two parts apart (server names may contain ``_`` and
    MCP tool names often contain ``-``). When that name is not a valid function name
    (``^[A-Za-z0-9_-]{1,64}$``: a ``.`` or ``/`` in the tool name, or too long), characters
    outside the set become ``_``, the name is cut to 55 characters and ``_`` plus 8 hex
    digits of a SHA-1 of the original pair are appended, so that it stays unique and the
    same in every run (a replayed model turn sees the same names).
    """
    plain = f"{server}__{tool}"
    if FUNCTION_NAME.match(plain):
        return plain
    return f"{UNSAFE.sub('_', plain)[:55]}_{digest(server, tool)}"


def digest(server: str, tool: str) -> str:
    return hashlib.sha1(f"{server}\0{tool}".encode()).hexdigest()[:8]


def model_name(name: str) -> str:
    """``server.tool`` (how agents and test files write an MCP tool) -> the name the model
    sees; any other name is returned as it is."""
    server, dot, tool = name.partition(".")
    return function_name(server, tool) if dot else name
