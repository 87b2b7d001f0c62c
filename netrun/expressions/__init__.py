"""netrun's one expression language: Jinja in a sandbox (:mod:`.jinja`), and its
translation to CEL for the expressions Inngest evaluates itself (:mod:`.cel`, judged by
Inngest's own policy in :mod:`.cel_policy`).

A base layer: the checker, the runtime and the engines all import it, and it imports
nothing of theirs, so that what ``netrun validate`` accepts is parsed exactly as a run
renders it.
"""
