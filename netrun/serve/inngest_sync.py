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
from typing import Any

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
            answer = await self._put_sync()
            if answer is None:
                self.sync_state = {
                    "status": "unreachable",
                    "reason": f"could not reach {self.settings.local_url} to sync the functions",
                }
                log.warning("%s", self.sync_state["reason"])
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
            again = await self._put_sync()
            if again:
                log.error("Inngest refused the last accepted versions too: %s", again)

    async def _put_sync(self) -> str | None:
        """One sync: ``""`` accepted, the reason when refused, None when unreachable (the
        server is not listening yet: tried 20 times over about 20 s, backing off linearly)."""
        import httpx
        from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_incrementing

        url = self.settings.local_url  # this process; what Inngest is told is registered_url
        retrying = AsyncRetrying(
            stop=stop_after_attempt(20),
            wait=wait_incrementing(start=0.1, increment=0.1),
            retry=retry_if_exception_type(httpx.TransportError),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    # Signed as Inngest signs (production accepts signed syncs only), afresh each try.
                    key = self.settings.signing_key if self.settings.inngest_mode == "cloud" else None
                    headers = {SIGNATURE_HEADER: sign(b"", key)} if key else {}
                    async with httpx.AsyncClient(timeout=10) as http:
                        answer = await http.put(url, headers=headers)
                    return _sync_problem(answer) or ""
        except RetryError:
            return None
        return None

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
