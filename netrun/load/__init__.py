"""Load: YAML text -> plain data, with the source position of every node.

PyYAML's constructors drop positions and silently keep the last of two duplicate keys,
so netrun composes the node graph itself (libyaml's C parser when present) and builds
plain Python data from it, recording a :class:`Span` for every path. Scalars resolve
with the YAML 1.2 core schema: ``on``, ``yes`` and ``no`` stay strings and ``2024-01-01``
is not a date, so a state enum ``[yes, no]`` means what it says.

The package: :mod:`.text` (decode and parse; syntax errors), :mod:`.yaml12` (the scalar
resolution), :mod:`.builder` (nodes to data, with paths), :mod:`.document` (the
:class:`Document` and its positions).
"""

from .builder import MAX_DEPTH
from .document import Document, LoadError, NodeRef, Span
from .text import load_text, read_text

__all__ = ["MAX_DEPTH", "Document", "LoadError", "NodeRef", "Span", "load_text", "read_text"]
