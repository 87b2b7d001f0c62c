"""``netrun serve``: networks as Inngest functions, a REST API, and the embedded local engine.

- :mod:`.settings` reads the mode (local engine, Inngest dev server, Inngest Cloud or a
  self-hosted Inngest) from the environment, following Inngest's conventions.
- :mod:`.catalog` holds the served networks and reloads them when their files change.
- :mod:`.functions` compiles each network into an Inngest function.
- :mod:`.local_runs` runs networks on the embedded engine (restart recovery, concurrency).
- :mod:`.run_events` fans a run's progress out to Server-Sent Events streams.
- :mod:`.app` is the FastAPI application factory that ties them together.
"""
