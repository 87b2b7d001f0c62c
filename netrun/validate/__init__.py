"""Validate network files: load -> spec -> check, for every file, collecting every problem.

This package is the whole of ``netrun validate`` below the CLI. It imports nothing heavy
(no litellm, mcp, fastapi or inngest), so that validation starts fast in CI and in
pre-commit.

The package: :mod:`.pipeline` (every file through the phases, then across files),
:mod:`.files` (which files, and the result of each), :mod:`.partial` (schema validation
that drops what is broken and goes on), :mod:`.sources` (the lines snippets quote, secrets
masked).
"""

from .files import SKIPPED_SUFFIXES, YAML_SUFFIXES, FileResult, PathError, Report, discover, network_names, roots_of
from .partial import validate_model
from .pipeline import validate_paths
from .sources import masked_lines

__all__ = [
    "SKIPPED_SUFFIXES",
    "YAML_SUFFIXES",
    "FileResult",
    "PathError",
    "Report",
    "discover",
    "masked_lines",
    "network_names",
    "roots_of",
    "validate_model",
    "validate_paths",
]
