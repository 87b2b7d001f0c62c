"""The ``netrun`` command line (the ``netrun`` console script and ``python -m netrun``).

The group and how errors become exit codes: :mod:`netrun.cli.group`; the commands, by what
they work on: :mod:`~netrun.cli.files` (validate, schema, graph, new, test),
:mod:`~netrun.cli.runs` (run, send), :mod:`~netrun.cli.server` (serve).
"""

from __future__ import annotations

from .files import graph, new, schema, test_command, validate
from .group import exit_code, main
from .runs import run, send
from .server import serve

for _command in (validate, schema, run, send, graph, new, test_command, serve):
    main.add_command(_command)

__all__ = ["exit_code", "main"]
