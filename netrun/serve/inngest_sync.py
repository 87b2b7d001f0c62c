"""Registering the served networks with Inngest, and what a refused sync means.

The SDK answers the sync PUT with 200 and ``{"error": ...}`` when Inngest refuses the app (it
refuses it as a whole). Refused after a reload, the server goes back to the versions Inngest
accepted last (served and synced again); refused at start-up, nothing can run, which
``/healthz`` and the REST API say. :class:`InngestSync` is part of the server
(:class:`netrun.serve.app.Server` inherits it).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

from ..redact import Secrets
from .catalog import Catalog, Version
from .inngest_guard import SIGNATURE_HEADER, sign
from .settings import ServeSettings

log = logging.getLogger("netrun.serve")


class InngestSync:
    settings: ServeSettings
    catalog: Catalog
    sync_state: dict[str, Any]
    """The last sync with Inngest: pending, synced, refused (with its reason) or unreachable."""
    _synced: tuple[dict[str, Version], dict[Path, Version]] | None
    """What Inngest accepted last (a catalog snapshot); None before its first acceptance."""
    _sync_lock: asyncio.Lock

    def _serve_functions(self) -> None:
        raise NotImplementedError  # the server's: rebuild the functions app

    async def sync(self) -> None:
        """Register the functions with the Inngest server (a PUT to ourselves, as the Inngest
        dev server or a deploy hook would), and read its answer: the SDK answers 200 with
        ``{"error": ...}`` when Inngest refuses the app (it refuses it as a whole). A refused
        reload goes back to the versions Inngest has (served and synced again); a refused
        start-up leaves nothing to run, which ``/healthz`` and the REST API say."""
        async with self._sync_lock:
            try:
                answer = await self._put_sync()
            except _SyncUnreachableError as exc:
                # Not a refusal: the files are fine, and the last good versions stay as they are.
                self.sync_state = {"status": "unreachable", "reason": str(exc)}
                log.warning("%s", exc)
                return
            if not answer:
                self._synced = self.catalog.snapshot()
                self.sync_state = {"status": "synced", "functions": len(self.catalog.current)}
                log.info("synced %d function(s) with Inngest as %s", len(self.catalog.current), self.settings.registered_url)
                return
            if self._synced is None:
                self.sync_state = {"status": "refused", "reason": answer}
                log.error(
                    "Inngest refused the functions, so no run can start: %s; fix the network files (the server reloads them)",
                    answer,
                )
                return
            taken_back = sorted(n for n, v in self.catalog.current.items() if self._synced[0].get(n) is not v)
            gone = sorted(set(self._synced[0]) - set(self.catalog.current))
            self.catalog.restore(self._synced)
            self._serve_functions()
            log.error(
                "Inngest refused the reloaded functions (%s): %s; serving and syncing the versions it has",
                ", ".join(taken_back + gone),
                answer,
            )
            self.sync_state = {"status": "refused", "reason": answer, "serving": "the last versions Inngest accepted"}
            try:
                again = await self._put_sync()
            except _SyncUnreachableError as exc:
                log.warning("%s", exc)
                return
            if again:
                log.error("Inngest refused the last accepted versions too: %s", again)

    async def _put_sync(self) -> str:
        """One sync: ``""`` accepted, else the reason Inngest refused it. Raises
        :class:`_SyncUnreachableError` when this server (tried 20 times over about 20 s,
        backing off linearly: it may still be starting) or Inngest (5 times) cannot be reached."""
        import httpx
        from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_incrementing

        url = self.settings.local_url  # this process; what Inngest is told is registered_url
        key = self.settings.signing_key if self.settings.inngest_mode == "cloud" else None

        async def once(http: httpx.AsyncClient) -> str:
            # Signed as Inngest signs (production accepts signed syncs only), afresh each try.
            answer = await http.put(url, headers={SIGNATURE_HEADER: sign(b"", key)} if key else {})
            problem = _sync_problem(answer)
            if problem is not None and _inngest_unreachable(answer):
                raise _InngestDownError(problem)
            return problem or ""

        retrying = AsyncRetrying(
            # Inngest down is told sooner (5 tries, about 1 s): it is not this process starting up.
            stop=stop_after_attempt(20) | (stop_after_attempt(5) & _last_failed_with(_InngestDownError)),
            wait=wait_incrementing(start=0.1, increment=0.1),
            retry=retry_if_exception_type((httpx.TransportError, _InngestDownError)),
        )
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                return cast(str, await retrying(once, http))
        except RetryError as exc:
            if isinstance(exc.last_attempt.exception(), _InngestDownError):
                where = self.settings.api_base_url or "the Inngest server"
                raise _SyncUnreachableError(
                    f"could not reach Inngest ({where}) to sync the functions; netrun syncs again when a "
                    "network file changes, and Inngest's dev server syncs from its side once it runs"
                ) from None
            raise _SyncUnreachableError(f"could not reach {url} to sync the functions") from None

    @property
    def ever_synced(self) -> bool:
        return self._synced is not None

    def unsynced(self, version: Version) -> str | None:
        """Why Inngest cannot start a run of ``version`` (it refused to sync it), or None."""
        if self.sync_state.get("status") != "refused" or (
            self._synced is not None and self._synced[0].get(version.name) is version
        ):
            return None
        return f"Inngest does not have network '{version.name}' as served here: it refused the sync ({self.sync_state['reason']})"


class _SyncUnreachableError(Exception):
    """A sync that reached no answer: this server, or the Inngest server behind it, did not answer."""


class _InngestDownError(Exception):
    """The SDK answered the sync, but could not reach Inngest to register (a retry may help)."""


def _last_failed_with(kind: type[Exception]) -> Any:
    """A tenacity stop condition: the last attempt raised ``kind``."""

    def stop(state: Any) -> bool:
        return isinstance(state.outcome.exception() if state.outcome else None, kind)

    return stop


def _inngest_unreachable(answer: Any) -> bool:
    """The SDK's answer when Inngest itself is not reachable: a 5xx saying its request to
    Inngest's ``/fn/register`` failed (inngest-py 0.5: ``Failed request to ...``), as
    opposed to Inngest refusing the functions (200 with ``{"error": ...}``)."""
    return bool(answer.status_code >= 500 and "Failed request to" in answer.text)


def _sync_problem(answer: Any) -> str | None:
    """What went wrong with a sync PUT, or None. The SDK answers 200 with ``{"error": ...}``
    when Inngest refused the registration."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if answer.status_code < 300 and not error:
        return None
    return f"HTTP {answer.status_code} {str(error or answer.text)[:300]}"


def describe_send_error(exc: Exception, event_key: str | None) -> str:
    """Why Inngest did not take an event, in one line, with the event key nowhere in it."""
    text = str(exc).strip().partition("\n")[0] or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {str(cause).partition(chr(10))[0]})"
    # The key in every form a URL or an error may quote it in (percent-encoded, ...).
    return Secrets([event_key] if event_key else []).head(text, 500)
