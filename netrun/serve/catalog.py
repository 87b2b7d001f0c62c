"""The networks ``netrun serve`` serves, and their reloads.

A reload validates every file again. A network whose file (and every fragment it
includes) is valid takes its new version; a network whose file, or a fragment it includes,
has an error keeps its last good version and the error is reported with validate's
messages. A broken file never holds back the others, not even one validation cannot
finish: the reload of every other file goes on. Runs never see a reload: a run pins the
definition it started with (the local engine stores it with the run; on Inngest the first
step of a run memoizes it), so the catalog only decides what *new* runs start on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..check.cycles import network_cycles
from ..compile import definition_hash
from ..engines.triggers import triggers
from ..spec import NetworkSpec
from ..spec.trigger import EventTrigger

log = logging.getLogger("netrun.serve")


@dataclass(frozen=True)
class Version:
    """One version of a network: the validated spec and where it came from."""

    spec: NetworkSpec
    hash: str
    file: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def base_dir(self) -> Path:
        return self.file.parent.resolve()

    def definition(self) -> dict[str, Any]:
        """The spec as stored with a run (and validated again when the run resumes)."""
        return self.spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)

    def not_enforced_locally(self) -> list[str]:
        """The settings of this network that the embedded local engine does not apply
        (Inngest does): reported at start-up, so that nobody relies on them unknowingly."""
        fn = self.spec.function
        found = (
            []
            if fn is None
            else [
                key
                for key in ("throttle", "rate_limit", "debounce", "priority", "idempotency", "timeouts")
                if getattr(fn, key, None)
            ]
        )
        if any(not isinstance(t, EventTrigger) for t in triggers(self.spec)):
            found.append("cron triggers")
        return found

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.spec.description,
            "file": str(self.file),
            "definition_hash": self.hash,
            "triggers": [
                {"event": t.event, **({"if": t.if_} if t.if_ else {})} if isinstance(t, EventTrigger) else {"cron": t.cron}
                for t in triggers(self.spec)
            ],
        }


@dataclass
class ReloadResult:
    changed: bool
    """Whether the set of served versions changed (the Inngest functions need a sync)."""
    problems: str = ""
    """Validate's report of the files with errors ('' when every file is valid)."""
    errors: int = 0
    kept: list[str] = field(default_factory=list)
    """Networks serving their last good version because their file has errors now."""


class Catalog:
    def __init__(self, paths: tuple[Path, ...]) -> None:
        self.paths = paths
        self.current: dict[str, Version] = {}
        self._by_file: dict[Path, Version] = {}

    def get(self, name: str) -> Version | None:
        return self.current.get(name)

    def snapshot(self) -> tuple[dict[str, Version], dict[Path, Version]]:
        """What is served now, to :meth:`restore` if a reload's versions must be taken back
        (Inngest refused to sync them)."""
        return dict(self.current), dict(self._by_file)

    def restore(self, snapshot: tuple[dict[str, Version], dict[Path, Version]]) -> None:
        self.current, self._by_file = dict(snapshot[0]), dict(snapshot[1])

    def reload(self) -> ReloadResult:
        from .. import report
        from ..validate import validate_paths

        try:
            result = validate_paths(self.paths)
        except Exception as exc:  # validate reports per file; this is the last line of defence
            return ReloadResult(
                False, f"reload failed ({type(exc).__name__}); the last good versions keep serving\n", 1, sorted(self.current)
            )
        broken = {Path(f.file).resolve() for f in result.files if f.kind != "network" and f.errors}
        by_file: dict[Path, Version] = {}
        kept: list[str] = []
        for f in result.files:
            if f.kind != "network":
                continue
            path = Path(f.file)
            if f.errors or f.spec is None or not broken.isdisjoint(f.includes):
                previous = self._by_file.get(path)
                if previous is not None:  # the last good version keeps serving
                    by_file[path] = previous
                    kept.append(previous.name)
                continue
            old = self._by_file.get(path)
            digest = definition_hash(f.spec)
            by_file[path] = old if old is not None and old.hash == digest else Version(f.spec, digest, path)
        current: dict[str, Version] = {}
        clashes = []
        for version in by_file.values():
            if version.name in current:
                clashes.append(
                    f"{version.file}: network '{version.name}' is also defined in {current[version.name].file}; serving the first"
                )
                continue
            current[version.name] = version
        cycles = self._break_cycles(current, by_file, kept)
        changed = {n: v.hash for n, v in current.items()} != {n: v.hash for n, v in self.current.items()}
        self.current, self._by_file = current, by_file
        problems = report.human(result, quiet=False) if result.errors else ""
        if clashes or cycles:
            problems += "".join(line + "\n" for line in [*clashes, *cycles])
        return ReloadResult(changed, problems, result.errors + len(clashes) + len(cycles), kept)

    def _break_cycles(self, current: dict[str, Version], by_file: dict[Path, Version], kept: list[str]) -> list[str]:
        """Keep the served set free of network-tool cycles. Validation reports a cycle at the
        tool that closes it, which may be in a file that did not change (an edit to ``a``
        closes ``a -> b -> a`` at ``b``'s tool, and ``b`` keeps serving its last good version,
        which calls ``a``): the new versions on a cycle go back to their last good version
        (or stop being served), until no cycle is left."""
        problems: list[str] = []
        while True:
            chains = network_cycles([v.spec for v in current.values()])
            if not chains:
                return problems
            fresh = [n for chain in chains for n in dict.fromkeys(chain) if current[n] is not self.current.get(n)]
            if not fresh:  # served this way before: nothing newer to take back
                return problems
            name = fresh[0]
            version = current.pop(name)
            previous = self.current.get(name)
            if previous is not None and previous.file == version.file:
                current[name] = by_file[version.file] = previous
                kept.append(name)
            else:
                by_file.pop(version.file, None)
            chain = next(c for c in chains if name in c)
            problems.append(
                f"{version.file}: network tools would call each other in a cycle: {' -> '.join(chain)}; "
                + (
                    "serving the last good version of"
                    if previous is not None and current.get(name) is previous
                    else "not serving"
                )
                + f" '{name}'"
            )
