"""The rules the Inngest server applies when it syncs a function, as validate errors.

One invalid function makes Inngest refuse the whole app's sync (``pkg/registration/process.go``
``ProcessFunctions``: "At least one function is invalid"), so every rule below is an error
here, located where the YAML breaks it. Each rule names the Go source it follows (in
github.com/inngest/inngest). What the check layer already reports (expressions that do not
translate to CEL, durations out of range, ``retries`` above 20 and at most 2 concurrency
limits in the schema) is not repeated.

Where each expression is checked at sync, and how:

=====================  ==================================================  =====================
expression             Go source                                           policy
=====================  ==================================================  =====================
trigger.if             trigger.go ``EventTrigger.Validate``                compiles (no policy)
concurrency[].key      concurrency.go ``StepConcurrency.Validate``         compiles
rate_limit.key         function.go ``RateLimit.IsValid``                   compiles
idempotency            sdk/function.go (a rate limit key) + the above      compiles
debounce.key           function.go ``Validate``                            compiles
priority.run           function.go ``Validate``                            compiles
cancel[].if            function.go ``Validate``                            restrictive
throttle.key           not checked at sync                                 (translation only)
singleton.key          not checked at sync                                 (translation only)
=====================  ==================================================  =====================

"compiles" is covered by the translation (:func:`netrun.expressions.cel.to_cel`, ``not-cel``
otherwise) and the template scopes (only ``event`` and, in cancel.if, ``async``, which
Inngest's CEL environment declares); type errors between literals (``"a" - 1``), which
cel-go's checker would also refuse, are not modelled. "restrictive" is
:mod:`netrun.expressions.cel_policy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnostic, YamlPath
from ..expressions.cel import CelError, to_cel
from ..expressions.cel_policy import NEEDLE, restrictive_violations
from ..spec.trigger import CronTrigger, EventTrigger
from .spec_errors import is_secret_path

if TYPE_CHECKING:
    from .network import NetworkChecker

MAX_TRIGGERS = 10
"""pkg/consts/consts.go ``MaxTriggers``, enforced in trigger.go ``MultipleTriggers.Validate``."""
MAX_EVENT_NAME = 255
"""trigger.go ``MaxEventNameLength`` (bytes: Go's ``len`` of a string)."""
MAX_CRON = 255
"""trigger.go ``MaxCronLength``."""
MAX_CANCELLATIONS = 5
"""pkg/consts/consts.go ``MaxCancellations``, enforced in function.go ``Validate``."""

_REFUSED = "Inngest refuses the function at sync, and with it the whole app"


def check(c: NetworkChecker) -> None:
    """Add every sync rule the network breaks to ``c.out``."""
    _triggers(c)
    fn = c.spec.function
    if fn is None:
        return
    _cancel(c)
    if isinstance(fn.concurrency, list):
        # concurrency.go StepConcurrency.Validate: a limit shared beyond this function
        # (env or account) needs a key, or Inngest would not know what to count.
        for i, limit in enumerate(fn.concurrency):
            if limit.scope != "fn" and limit.key is None:
                c.report(
                    ("function", "concurrency", i, "scope"),
                    f"a concurrency limit with scope '{limit.scope}' needs a 'key' (an expression over event, e.g. "
                    f"event.data.account_id): {_REFUSED} (concurrency.go). Without a key, use scope 'fn'",
                    "concurrency-key-required",
                )
    if fn.idempotency is not None and fn.rate_limit is not None:
        # pkg/sdk/function.go SDKFunction.Function: idempotency *becomes* the rate limit
        # (1 per 24h per key), replacing the one configured: the sync succeeds, the limit is lost.
        c.warn(
            ("function", "rate_limit"),
            "Inngest ignores this rate_limit: 'idempotency' is a rate limit of 1 run per 24h per key, and Inngest "
            "replaces the function's rate_limit with it (pkg/sdk/function.go); keep one of the two",
            "idempotency-replaces-rate-limit",
        )


def _triggers(c: NetworkChecker) -> None:
    trig = c.spec.trigger
    if trig is None:
        return  # the default trigger, netrun/NAME.run, is short and single
    items: list[tuple[YamlPath, Any]] = (
        [(("trigger", i), t) for i, t in enumerate(trig)] if isinstance(trig, list) else [(("trigger",), trig)]
    )
    if len(items) > MAX_TRIGGERS:
        c.report(
            ("trigger", MAX_TRIGGERS),
            f"a function has at most {MAX_TRIGGERS} triggers and this one has {len(items)}: {_REFUSED} (trigger.go); "
            "split the network, or start it from one event that the others' senders send",
            "too-many-triggers",
        )
    # trigger.go: triggers are compared by the hash of their JSON as the SDK sends it (event
    # and translated expression, or cron), so 'input', which stays in netrun, does not tell them apart.
    seen: dict[tuple[str, str, str | None], int] = {}
    for path, t in items:
        if isinstance(t, EventTrigger):
            size = len(t.event.encode())
            if size > MAX_EVENT_NAME:
                c.report(
                    (*path, "event"),
                    f"the event name is {size} bytes long, and Inngest allows at most {MAX_EVENT_NAME} "
                    f"in a trigger: {_REFUSED} (trigger.go)",
                    "event-name-too-long",
                )
            try:
                expression = to_cel(t.if_) if t.if_ else None
            except CelError:
                continue  # reported as not-cel
            ident: tuple[str, str, str | None] = ("event", t.event, expression)
        elif isinstance(t, CronTrigger):
            ident = ("cron", t.cron, None)
            if len(t.cron) > MAX_CRON:
                c.report(
                    (*path, "cron"),
                    f"the cron schedule is {len(t.cron)} characters long, and Inngest allows at most "
                    f"{MAX_CRON}: {_REFUSED} (trigger.go)",
                    "cron-too-long",
                )
        else:
            continue
        index = path[-1]
        if not isinstance(index, int):
            continue  # a single trigger
        first = seen.setdefault(ident, index)
        if first != index:
            what = (
                f"cron '{t.cron}'"
                if ident[0] == "cron"
                else f"event {t.event}" + (" with the same if" if ident[2] else ", no if")
            )
            c.report(
                path,
                f"this trigger is the same as trigger[{first}] ({what}): {_REFUSED} (trigger.go, duplicate "
                "trigger); its 'input' is netrun's and does not make it another trigger: remove one, or tell them apart with 'if'",
                "duplicate-trigger",
                key=True,
            )


def _cancel(c: NetworkChecker) -> None:
    fn = c.spec.function
    assert fn is not None
    allowed = MAX_CANCELLATIONS - 1  # netrun adds one to every function, for POST /runs/{id}/cancel
    if len(fn.cancel) > allowed:
        c.report(
            ("function", "cancel", allowed),
            f"a function has at most {MAX_CANCELLATIONS} cancel entries and netrun adds one (POST /runs/{{id}}/cancel), "
            f"so at most {allowed} here, and this one has {len(fn.cancel)}: {_REFUSED} "
            "(function.go, MaxCancellations); send one cancelling event for several causes, and tell them apart with 'if'",
            "too-many-cancels",
        )
    for i, cancel in enumerate(fn.cancel):
        path: YamlPath = ("function", "cancel", i, "if")
        if cancel.if_ is None or any(d.path == path for d in c.out):
            continue  # none, or already reported (not valid Jinja, or no CEL form)
        try:
            translated = to_cel(cancel.if_)
        except CelError:
            continue
        try:
            violations = restrictive_violations(translated)
        except ValueError:
            continue  # not CEL as the translator writes it: a bug there, not the user's
        for v in violations:
            _at(
                c,
                path,
                cancel.if_,
                NEEDLE.get(v.function),
                f"Inngest refuses this cancel condition at sync, and with it the whole app: it becomes the CEL "
                f"`{translated}`, which uses {v.what}. Cancel conditions follow Inngest's restrictive policy "
                "(function.go, expressions/validation.go): no macros, arithmetic, negation or function calls; only "
                "==, !=, <, <=, >, >=, in, not in, and, or, not, fields, [indexes] and literals",
                "cancel-if-policy",
            )


def _at(c: NetworkChecker, path: YamlPath, source: str, needle: str | None, message: str, code: str) -> None:
    """Report at ``needle``'s first place in the expression (else at the expression)."""
    offset = source.find(needle) if needle else -1
    if offset < 0:
        pos = c.doc.pos(path)
    else:
        line = source.count("\n", 0, offset)
        pos = c.doc.text_pos(path, line, offset - (source.rfind("\n", 0, offset) + 1), needle)
    c.out.append(Diagnostic(pos=pos, message=message, path=path, code=code, secret=is_secret_path(path)))
