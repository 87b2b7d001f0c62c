"""The coding example's setup step (``setup:`` in ``networks/coding.yaml``): load the task.

AgentKit's guides fetch the ticket before the network runs (``get_ticket_details``) and throw
``NonRetriableError`` when there is none. Here a task is a Markdown file in ``tasks/`` beside
this module, named by the event's ``taskId``; a request with no task id is its own task.
An unknown id raises: the step is declared ``non_retriable``, so the run fails at once.
"""

from __future__ import annotations

import re
from pathlib import Path

TASKS = Path(__file__).resolve().parent / "tasks"


def load_task(task_id: str = "", request: str = "") -> dict[str, str]:
    """The task to work on: its id, title and the full text of what to build."""
    if not task_id:
        if not request.strip():
            raise ValueError("there is no task: give a taskId or a request")
        return {"id": "adhoc", "title": request.strip().splitlines()[0][:80], "text": request.strip()}
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", task_id):
        raise ValueError(f"a task id is letters, digits, '-' and '_': {task_id!r}")
    path = TASKS / f"{task_id}.md"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TASKS.glob("*.md"))) or "none"
        raise LookupError(f"no task {task_id!r} (known tasks: {known})")
    text = path.read_text(encoding="utf-8").strip()
    title = text.splitlines()[0].lstrip("# ").strip()
    if request.strip():
        text += f"\n\nThe requester adds: {request.strip()}"
    return {"id": task_id, "title": title, "text": text}
