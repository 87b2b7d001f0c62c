"""Benchmark of ``netrun validate``: cold start and throughput, against check-jsonschema.

What is measured, and why
-------------------------
``netrun validate`` runs in pre-commit hooks, in CI and in editors on save, so two
figures matter:

* **Cold start**: the wall time of ``netrun validate ONE_FILE`` as a fresh process, which
  is what a pre-commit hook or an editor pays on every save. It is the median (and min)
  of ``--repeat`` runs, next to the interpreter floor (``python -c pass``) that no Python
  tool can go below. The validate process must not import the run-time stack (litellm,
  mcp, fastapi, inngest): that alone costs seconds. The script checks ``sys.modules``
  after running the CLI in-process, and lists the slowest imports (``-X importtime``).
  Target: median cold start <= 0.35 s.

* **Throughput**: ``netrun validate DIR`` on N generated network files (N = 10, 100,
  1000), in files per second, which is what CI pays on a repository of many networks.
  The yardstick is ``check-jsonschema --schemafile schemas/network.schema.json FILES``,
  the generic way to validate YAML against the published JSON Schema. netrun does
  strictly more per file: besides the schema it checks cross references (rules name
  agents, agents name tools and MCP servers, tools name state fields and networks),
  parses every Jinja template and expression and checks its variables against its scope,
  ``${ENV}`` syntax, durations, cron strings, model ids, and reachability. A JSON Schema
  can say none of that. Target: on 1000 files netrun validates >= 3x as many files per
  second as check-jsonschema.

The generated files are realistic: each has about 5 agents, 8 tools (state tools with
parameters, http tools, a wait_for_event tool, sometimes a network tool), 6 router rules,
an MCP server, typed state fields with enums and defaults, prompt fragments, Jinja
templates in prompts/tools/rules, a trigger and a ``function:`` section. Content varies
per file (themes, names, transports, models, limits). Every file must validate cleanly
with both tools; the benchmark fails loudly otherwise (a false error is a bug to report,
not a figure).

Run it with the venv's interpreter (it uses the ``netrun`` and ``check-jsonschema``
scripts next to ``sys.executable``)::

    .venv/bin/python bench/validate.py                 # sizes 10,100,1000; ~1-2 minutes
    .venv/bin/python bench/validate.py --sizes 10,100 --repeat 5
    .venv/bin/python bench/validate.py --keep /tmp/nets   # keep the generated files
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "network.schema.json"
BIN = Path(sys.executable).parent
NETRUN = BIN / "netrun"
CHECK_JSONSCHEMA = BIN / "check-jsonschema"

COLD_START_TARGET_S = 0.35
THROUGHPUT_TARGET_RATIO = 3.0
HEAVY_MODULES = ("litellm", "mcp", "fastapi", "inngest")
ARG_BUDGET = 100_000  # characters of paths per check-jsonschema command line


# -- generating network files --------------------------------------------------------


@dataclass(frozen=True)
class Theme:
    slug: str
    entity: str
    categories: tuple[str, ...]
    roles: tuple[tuple[tuple[str, str], tuple[str, str]], ...]
    """Five agent slots (classify, look up, take notes, escalate, finish), each with two
    (name, description) choices."""
    server: str
    server_tools: tuple[str, ...]
    api: str
    keyword: str


THEMES: tuple[Theme, ...] = (
    Theme(
        "support",
        "ticket",
        ("billing", "technical", "account", "shipping"),
        (
            (("triage", "Classifies the ticket and sets its priority."), ("dispatcher", "Reads new tickets and sorts them.")),
            (
                ("tech_support", "Solves technical problems using the product docs."),
                ("billing_agent", "Answers invoices and refunds."),
            ),
            (
                ("investigator", "Digs into the account history and records findings."),
                ("account_manager", "Handles account access."),
            ),
            (("escalation", "Escalates urgent tickets to a human on call."), ("on_call", "Brings in the on-call engineer.")),
            (("closer", "Writes the final answer to the customer."), ("qa_reviewer", "Reviews and sends the final answer.")),
        ),
        "docs",
        ("search", "fetch_page", "list_topics"),
        "https://api.helpdesk.example.com/v2",
        "refund",
    ),
    Theme(
        "sales",
        "lead",
        ("enterprise", "smb", "startup", "partner"),
        (
            (("qualifier", "Qualifies the lead and scores it."), ("scorer", "Scores inbound leads.")),
            (("researcher", "Researches the company behind the lead."), ("enricher", "Enriches the lead from the CRM.")),
            (("note_taker", "Records what was learnt about the lead."), ("discovery", "Asks a rep about open questions.")),
            (("handoff", "Hands hot leads to an account executive."), ("ae_alert", "Alerts the account executive.")),
            (("drafter", "Drafts a personalised outreach email."), ("summarizer", "Summarises the lead for the CRM.")),
        ),
        "crm",
        ("find_company", "list_deals", "get_contact"),
        "https://crm.example.com/api",
        "demo",
    ),
    Theme(
        "incident",
        "incident",
        ("outage", "degradation", "security", "data"),
        (
            (("responder", "Acknowledges the alert and classifies the incident."), ("classifier", "Classifies alerts.")),
            (("investigator", "Reads logs and metrics to find the cause."), ("diagnoser", "Finds the failing component.")),
            (("scribe", "Keeps the incident timeline."), ("remediator", "Proposes a mitigation and asks for a go.")),
            (("pager", "Pages the on-call engineer when needed."), ("commander", "Takes command of severe incidents.")),
            (("communicator", "Writes the status page update."), ("postmortem", "Drafts the post-mortem.")),
        ),
        "observability",
        ("query_logs", "query_metrics", "list_deploys"),
        "https://status.example.com/api/v1",
        "rollback",
    ),
    Theme(
        "claims",
        "claim",
        ("auto", "home", "travel", "health"),
        (
            (("intake", "Reads the claim and classifies it."), ("sorter", "Sorts incoming claims.")),
            (("verifier", "Verifies the policy and coverage."), ("coverage_check", "Checks what the policy covers.")),
            (("fraud_check", "Looks for signs of fraud and notes them."), ("adjuster", "Asks an adjuster when unsure.")),
            (("supervisor", "Escalates large claims to a supervisor."), ("special_unit", "Escalates suspicious claims.")),
            (("notifier", "Writes the decision letter."), ("settler", "Writes the settlement offer.")),
        ),
        "policies",
        ("lookup_policy", "coverage", "history"),
        "https://claims.example.com/api",
        "urgent",
    ),
    Theme(
        "recruiting",
        "candidate",
        ("engineering", "design", "sales", "operations"),
        (
            (("screener", "Screens the application against the job."), ("sourcer", "Sorts applications by role.")),
            (("resume_reader", "Reads the resume and the opening."), ("matcher", "Matches the candidate to openings.")),
            (("reference_checker", "Collects references."), ("interviewer", "Asks the panel for feedback.")),
            (("recruiter", "Escalates strong candidates to the recruiter."), ("fast_track", "Fast-tracks top candidates.")),
            (("offer_writer", "Drafts the offer or rejection letter."), ("rejecter", "Writes a kind reply.")),
        ),
        "ats",
        ("get_resume", "list_openings", "search_candidates"),
        "https://ats.example.com/api/v3",
        "senior",
    ),
)

MODELS = (
    "openai/gpt-4o-mini",
    "openai/gpt-4o",
    "anthropic/claude-3-5-haiku-latest",
    "anthropic/claude-3-5-sonnet-latest",
    "gemini/gemini-1.5-flash",
    "mistral/mistral-small-latest",
)
LANGS = ("en", "fr", "de", "es")


def q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def sq(text: str) -> str:
    """A YAML single-quoted scalar, as people write expressions that contain double quotes."""
    return "'" + text.replace("'", "''") + "'"


def indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())


def network_name(i: int) -> str:
    return f"{THEMES[i % len(THEMES)].slug}-{i:04d}"


def has_network_tool(i: int) -> bool:
    """Whether file ``i`` has a tool that runs network 0 (present in every set)."""
    return i % 7 == 3


def network_yaml(i: int, seed: int) -> str:
    """The text of network file number ``i``: valid, and different from its neighbours."""
    rng = random.Random(seed * 1_000_003 + i)
    t = THEMES[i % len(THEMES)]
    e = t.entity
    eid = f"{e}_id"
    cats = list(t.categories)
    rng.shuffle(cats)
    (a0, d0), (a1, d1), (a2, d2), (a3, d3), (a4, d4) = (rng.choice(slot) for slot in t.roles)
    otherwise = rng.choice(("llm", "llm", "stop", a4))
    srv = t.server
    stool = rng.choice(t.server_tools)
    transport = ("streamable-http", "stdio", "sse")[i % 3]
    default_model = rng.choice(MODELS)
    net_tool = has_network_tool(i)
    event = f"app/{t.slug}.{e}.created"
    hook = f"{t.api}/hooks/{rng.randrange(1000, 9999)}"

    out: list[str] = [
        f"# yaml-language-server: $schema={SCHEMA}",
        f"# Generated by bench/validate.py (file {i}, seed {seed}).",
        f"name: {network_name(i)}",
        f"description: {q(f'{t.slug.title()} workflow #{i}: route each {e} to the right specialist.')}",
    ]

    # trigger: one event, or an event and a schedule
    skip = rng.choice(("spam", "test", "bot"))
    trigger_event = [
        f"  event: {event}",
        f"  if: {sq(f'event.data.source != {q(skip)} and event.data.{eid}')}",
        f"  input: {sq('{{ event.data.subject }}: {{ event.data.body | default(' + q('') + ') }}')}",
    ]
    if i % 3 == 0:
        cron = rng.choice(("0 9 * * 1-5", "*/30 * * * *", "15 2 * * *"))
        tz = rng.choice(("UTC", "Europe/Paris", "America/New_York"))
        out.append("trigger:")
        out.append("  - " + trigger_event[0].strip())
        out.extend("  " + line for line in trigger_event[1:])
        out.append(f"  - cron: {q(f'TZ={tz} {cron}')}")
        out.append(f"    input: {q(f'Scheduled review of open {e}s')}")
    else:
        out.append("trigger:")
        out.extend(trigger_event)

    # model
    if rng.random() < 0.3:
        out += [
            "model:",
            f"  id: {default_model}",
            f"  params: {{temperature: {rng.choice((0, 0.2, 0.5))}, max_tokens: {rng.choice((512, 1024, 2048))}}}",
            f"  fallbacks: [{rng.choice(MODELS)}]",
            "  api_key: ${" + default_model.split("/")[0].upper() + "_API_KEY}",
            "  timeout: 60s",
        ]
    else:
        out.append(f"model: {default_model}")
    if rng.random() < 0.5:
        out.append(f"max_iter: {rng.randrange(6, 20)}")
    else:
        out += [
            "limits:",
            f"  iterations: {rng.randrange(6, 20)}",
            f"  tokens: {rng.choice((50_000, 200_000, 500_000))}",
            f"  cost: {rng.choice((0.25, 0.5, 2.0))}",
            f"  time: {rng.choice(('5m', '10m', '1h'))}",
        ]

    # state
    out += [
        "state:",
        f"  {eid}: {{type: string, description: {q(f'The {e} being handled.')}}}",
        f"  category: {{type: string, enum: [{', '.join(cats)}]}}",
        "  priority: {type: integer, minimum: 1, maximum: 5, default: 3}",
        f"  lang: {{type: string, enum: [{', '.join(LANGS)}], default: en}}",
        "  answer: {type: string}",
        "  escalated: {type: boolean, default: false}",
        "  last_note: string",
        "  notes: {type: array, items: {type: string}, default: []}",
        "  customer:",
        "    type: object",
        "    properties:",
        "      name: {type: string}",
        "      email: {type: string, format: email}",
        "      tier: {type: string, enum: [free, pro, enterprise]}",
        "    required: [name]",
    ]

    # prompts
    out += [
        "prompts:",
        f"  tone: {q('Be concise and polite. Reply in {{ state.lang }}.')}",
        "  context: |",
        f"    {e.title()} {{{{ state.{eid} }}}} ({{{{ state.category | default('unclassified') }}}}, priority {{{{ state.priority }}}}).",
        "    {% if state.customer %}Customer: {{ state.customer.name }} ({{ state.customer.tier }}).{% endif %}",
        "    {% for note in state.notes %}",
        "    - {{ note }}",
        "    {% endfor %}",
    ]

    # agents
    def agent(name: str, desc: str, system: str, tools: list[str], extra: Sequence[str] = ()) -> list[str]:
        lines = [f"  {name}:", f"    description: {q(desc)}", "    system: |", indent(system, 6)]
        if tools:
            lines.append(f"    tools: [{', '.join(tools)}]")
        return lines + [f"    {x}" for x in extra]

    server_ref = f"{srv}.{stool}" if rng.random() < 0.6 else f"{srv}.*"
    a1_extra = [f"model: {rng.choice(MODELS)}"] if rng.random() < 0.5 else []
    a2_extra: list[str] = []
    if rng.random() < 0.5:
        a2_extra = [
            "model:",
            f"  id: {rng.choice(MODELS)}",
            f"  params: {{temperature: {rng.choice((0.1, 0.3, 0.7))}}}",
        ]
    a3_extra = [f"limits: {{calls: {rng.randrange(1, 4)}, tool_calls: {rng.randrange(2, 8)}, time: 2m}}"]
    a4_tools = ["set_answer", "post_update"] + (["handoff"] if net_tool else [])
    out.append("agents:")
    out += agent(
        a0,
        d0,
        f"You are the first reader of every {e}. Classify it: call set_category, then set_priority.\n"
        f'{{% include "tone" %}}\n\nThe {e}: {{{{ input }}}}',
        ["set_category", "set_priority"],
        ["tool_choice: required"],
    )
    out += agent(
        a1,
        d1,
        f'{{% include "context" %}}\nLook the {e} up with get_{e} and search with {srv} before answering.\n'
        f"{{% if state.priority > 3 %}}This is urgent.{{% endif %}}\nRequest: {{{{ input | truncate(500) }}}}",
        [f"get_{e}", "search_kb", server_ref],
        a1_extra,
    )
    out += agent(
        a2,
        d2,
        '{% include "context" %}\nAdd a note for every finding. Ask a human when unsure.\n'
        "Previous agent: {{ last_agent | default('none') }}. Calls so far: {{ call_count }}.",
        ["add_note", "ask_human"],
        [*a2_extra, f"mcp_servers: [{srv}]"] if rng.random() < 0.5 else a2_extra,
    )
    out += agent(
        a3,
        d3,
        f"The {e} {{{{ state.{eid} }}}} is urgent (priority {{{{ state.priority }}}}).\n"
        'Escalate it with a short reason; notify the team with post_update.\n{% include "tone" %}',
        ["escalate", "post_update"],
        a3_extra,
    )
    out += agent(
        a4,
        d4,
        '{% include "context" %}\nWrite the final answer for {{ network.name }} and call set_answer.\n{% include "tone" %}',
        a4_tools,
    )

    # router
    c0, c1 = cats[0], cats[1]
    out += [
        "router:",
        "  rules:",
        "    - if: state.answer and not state.escalated",
        "      stop: true",
        "    - if: not state.category",
        f"      agent: {a0}",
        "    - if: state.priority >= 4 and not state.escalated",
        f"      agent: {a3}",
        f"    - if: {sq(f'state.category in [{q(c0)}, {q(c1)}] and call_count < {rng.randrange(4, 9)}')}",
        f"      agent: {a1}",
        f"    - if: {sq(f'last_agent == {q(a1)} or {q(t.keyword)} in input | lower')}",
        f"      agent: {a2}",
        "    - if: last_output and state.notes | length >= 2",
        f"      agent: {a4}",
        f"  otherwise: {otherwise}",
    ]
    if otherwise == "llm" and rng.random() < 0.5:
        out += [
            "  llm:",
            f"    model: {rng.choice(MODELS)}",
            "    system: |",
            f"      Pick the next agent for {e} {{{{ state.{eid} }}}} from: {{{{ agents }}}}.",
            "      Finish when state.answer is set.",
        ]

    # tools
    approval = "    approval: required" if rng.random() < 0.3 else "    approval: {timeout: 12h}"
    out += [
        "tools:",
        "  set_category:",
        f"    description: {q(f'Set the category of the {e}.')}",
        f"    state: {{category: {q('{{ args.category }}')}}}",
        f"    parameters: {{category: {{type: string, enum: [{', '.join(cats)}]}}}}",
        "  set_priority:",
        "    description: Set the priority, 1 (low) to 5 (critical).",
        "    state:",
        "      priority: '{{ args.priority }}'",
        "      lang: '{{ args.lang }}'",
        "    parameters:",
        "      type: object",
        "      properties:",
        "        priority: {type: integer, minimum: 1, maximum: 5}",
        f"        lang: {{type: string, enum: [{', '.join(LANGS)}], default: en}}",
        "      required: [priority]",
        "  add_note:",
        "    description: Record a finding.",
        "    state: {last_note: '{{ args.note }}'}",
        "    parameters: {note: {type: string, maxLength: 500}}",
        "  set_answer:",
        f"    description: {q(f'Set the final answer to the {e}.')}",
        "    state:",
        "      answer: '{{ args.answer }}'",
        "      escalated: false",
        "    parameters:",
        "      answer: {type: string, minLength: 1}",
        "  escalate:",
        "    description: Mark as escalated and critical.",
        "    state: {escalated: true, priority: 5, last_note: 'Escalated: {{ args.reason }}'}",
        "    parameters: {reason: {type: string}}",
        f"  get_{e}:",
        f"    description: {q(f'Fetch the {e} record.')}",
        "    http:",
        f"      url: {q(t.api + '/' + e + 's/{{ state.' + eid + ' }}')}",
        "      headers: {Authorization: 'Bearer ${" + t.slug.upper() + "_API_TOKEN}', Accept: application/json}",
        "      query: {expand: '{{ args.expand }}'}",
        f"      timeout: {rng.choice(('10s', '20s', '30s'))}",
        f"      retries: {rng.randrange(0, 4)}",
        "    parameters:",
        "      expand: {type: string, enum: [history, customer, none], default: none}",
        "  search_kb:",
        "    description: Search the knowledge base.",
        "    http:",
        "      method: POST",
        f"      url: {t.api}/kb/search",
        "      headers: {Authorization: 'Bearer ${KB_TOKEN}'}",
        "      body:",
        "        query: '{{ args.query }}'",
        "        lang: '{{ state.lang }}'",
        f"        limit: {rng.randrange(3, 10)}",
        "        filters: {category: '{{ state.category }}'}",
        "      max_bytes: 200000",
        "    parameters:",
        "      query: {type: string, description: Words to search for}",
        "  post_update:",
        "    description: Post an update to the team channel.",
        "    http:",
        "      method: POST",
        f"      url: {hook}",
        "      body: {text: '{{ args.text }}', run: '{{ run.id }}', ref: '{{ state." + eid + " }}'}",
        "    parameters: {text: {type: string}}",
        approval,
        "  ask_human:",
        "    description: Ask a human a question and wait for the answer.",
        "    wait_for_event:",
        f"      event: app/{t.slug}.{e}.human-reply",
        f"      match: data.{eid}",
        "      if: async.data.author != 'bot' and args.question",
        f"      timeout: {rng.choice(('1h', '4h', '1d', '2h30m'))}",
        "    parameters: {question: {type: string}}",
    ]
    if net_tool:
        out += [
            "  handoff:",
            f"    description: Hand the {e} over to another workflow.",
            "    network:",
            f"      name: {network_name(0)}",
            "      input: '{{ args.summary }} (from {{ state." + eid + " }})'",
            "    parameters: {summary: {type: string}}",
        ]

    # MCP server
    out += ["mcp_servers:", f"  {srv}:", f"    transport: {transport}"]
    if transport == "stdio":
        out += [
            "    command: npx",
            f"    args: [-y, '@acme/{srv}-mcp', --region, '${{REGION:-eu}}']",
            "    env: {API_KEY: '${" + srv.upper() + "_API_KEY}'}",
        ]
    elif transport == "sse":
        out += [f"    url: http://127.0.0.1:{3000 + i % 1000}/sse"]
    else:
        out += [f"    url: https://mcp.example.com/{srv}/mcp", "    headers: {Authorization: 'Bearer ${MCP_TOKEN}'}"]
    if server_ref.endswith(".*"):
        out.append(f"    exclude: [{t.server_tools[-1]}]")
    else:
        out.append(f"    include: [{', '.join(sorted({stool, *rng.sample(t.server_tools, 2)}))}]")
    out.append(f"    timeout: {rng.choice(('30s', '60s', '2m'))}")

    # function
    out += ["function:", f"  retries: {rng.randrange(0, 6)}"]
    if rng.random() < 0.5:
        out.append(f"  concurrency: [{{key: event.data.account_id, limit: {rng.randrange(1, 10)}}}]")
    else:
        out.append(f"  concurrency: {rng.randrange(5, 50)}")
    if rng.random() < 0.5:
        out.append(f"  throttle: {{limit: {rng.randrange(10, 100)}, period: 1m, key: event.data.account_id}}")
    out += [
        "  idempotency: event.data." + eid,
        "  cancel:",
        f"    - event: app/{t.slug}.{e}.closed",
        f"      if: event.data.{eid} == async.data.{eid}",
        "      timeout: 7d",
        f"  timeouts: {{finish: {rng.choice(('30m', '1h', '6h'))}}}",
    ]
    return "\n".join(out) + "\n"


def generate(directory: Path, count: int, seed: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"{network_name(i)}.yaml"
        path.write_text(network_yaml(i, seed), encoding="utf-8")
        paths.append(path)
    return paths


# -- running and timing ----------------------------------------------------------------


class BenchError(RuntimeError):
    """A run that did not succeed: the figures would be meaningless."""


def timed(cmd: Sequence[str | Path], cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd)
    return time.perf_counter() - start, proc


def fail(what: str, proc: subprocess.CompletedProcess[str]) -> BenchError:
    def tail(text: str) -> str:
        return "\n".join(text.splitlines()[-40:])

    return BenchError(
        f"{what} failed with exit code {proc.returncode}\n"
        f"command: {' '.join(map(str, proc.args))[:500]}\n--- stdout (tail) ---\n{tail(proc.stdout)}\n"
        f"--- stderr (tail) ---\n{tail(proc.stderr)}"
    )


def netrun_validate(target: Path, expect_files: int, cwd: Path) -> tuple[float, int]:
    """Run ``netrun validate --format json TARGET``; return (seconds, warnings)."""
    seconds, proc = timed([NETRUN, "validate", "--format", "json", target], cwd=cwd)
    if proc.returncode != 0:
        try:  # show the diagnostics, not a JSON tail
            diags = json.loads(proc.stdout)["diagnostics"]
            proc.stdout = "\n".join(
                f"{d['file']}:{d['line']}:{d['col']}: {d['severity']}: {d['path']}: {d['message']}" for d in diags
            )
        except (ValueError, KeyError):
            pass
        raise fail(f"netrun validate {target}", proc)
    report = json.loads(proc.stdout)
    if report["errors"] or len(report["files"]) != expect_files:
        raise fail(f"netrun validate {target} (errors={report['errors']}, files={len(report['files'])})", proc)
    if report["warnings"]:
        for d in report["diagnostics"][:5]:
            print(f"  note: netrun warning {d['file']}:{d['line']}:{d['col']}: {d['message']}", file=sys.stderr)
    return seconds, int(report["warnings"])


def check_jsonschema(files: Sequence[Path], cwd: Path) -> float:
    """Run check-jsonschema over ``files`` in batches; return the summed seconds."""
    total, size = 0.0, 0
    batch: list[Path] = []
    batches: list[list[Path]] = []
    for f in files:
        if batch and size + len(str(f)) + 1 > ARG_BUDGET:
            batches.append(batch)
            batch, size = [], 0
        batch.append(f)
        size += len(str(f)) + 1
    if batch:
        batches.append(batch)
    for b in batches:
        seconds, proc = timed([CHECK_JSONSCHEMA, "--schemafile", SCHEMA, *b], cwd=cwd)
        if proc.returncode != 0:
            raise fail("check-jsonschema", proc)
        total += seconds
    return total


def median_min(samples: Sequence[float]) -> tuple[float, float]:
    return statistics.median(samples), min(samples)


IMPORT_PROBE = """
import json, sys
from netrun.cli import main
try:
    code = main(["validate", sys.argv[1]], standalone_mode=False)
except SystemExit as exc:
    code = exc.code
heavy = {h: sorted(m for m in sys.modules if m == h or m.startswith(h + ".")) for h in HEAVY}
print("@@probe@@" + json.dumps({"code": code, "modules": len(sys.modules), "heavy": heavy}))
"""


def import_probe(file: Path, cwd: Path) -> dict[str, object]:
    """Run the CLI in-process and report which heavy modules it imported."""
    code = IMPORT_PROBE.replace("HEAVY", repr(HEAVY_MODULES))
    _, proc = timed([sys.executable, "-c", code, file], cwd=cwd)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("@@probe@@")), None)
    if line is None:
        raise fail("the import probe", proc)
    result: dict[str, object] = json.loads(line.removeprefix("@@probe@@"))
    if result["code"] not in (0, None):
        raise fail(f"the import probe (exit code {result['code']})", proc)
    return result


def slowest_imports(file: Path, cwd: Path, top: int = 6) -> list[tuple[str, float]]:
    """Import self time summed per top-level package (``-X importtime``), in seconds,
    the slowest first: where the cold start goes."""
    _, proc = timed([sys.executable, "-X", "importtime", "-m", "netrun", "validate", file], cwd=cwd)
    if proc.returncode != 0:
        raise fail("netrun validate under -X importtime", proc)
    found: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        if not self_us.strip().isdigit():  # the header line
            continue
        package = name.strip().split(".")[0]
        found[package] = found.get(package, 0.0) + int(self_us) / 1e6
    return sorted(found.items(), key=lambda kv: -kv[1])[:top]


# -- the benchmark ---------------------------------------------------------------------


@dataclass
class SizeResult:
    n: int
    netrun_s: float
    cjs_s: float
    warnings: int

    @property
    def netrun_fps(self) -> float:
        return self.n / self.netrun_s

    @property
    def cjs_fps(self) -> float:
        return self.n / self.cjs_s


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated integers, got {text!r}") from None
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("--sizes must be positive integers")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=parse_sizes, default=[10, 100, 1000], help="file counts (default 10,100,1000)")
    parser.add_argument("--repeat", type=int, default=15, help="netrun cold-start runs (default 15)")
    parser.add_argument("--cjs-repeat", type=int, default=5, help="check-jsonschema cold-start runs (default 5)")
    parser.add_argument("--runs", type=int, default=1, help="throughput runs per size, the best is kept (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated content (default 1)")
    parser.add_argument("--keep", type=Path, help="generate the files here and keep them (default: a temp dir)")
    parser.add_argument("--check-targets", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    for exe in (NETRUN, CHECK_JSONSCHEMA):
        if not exe.exists():
            print(f"error: {exe} not found; run this with the venv's python (.venv/bin/python)", file=sys.stderr)
            return 2

    started = time.perf_counter()
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="netrun-bench-"))
    try:
        return run(args, work, started)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        print(f"(generated files kept in {work})", file=sys.stderr)
        args.keep = work  # keep them for inspection
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, started: float) -> int:
    print(f"netrun validate benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, files in {work})")

    # cold start: one file alone in its directory (validate also reads sibling networks)
    single_dir = work / "single"
    if single_dir.exists():
        shutil.rmtree(single_dir)
    one = generate(single_dir, 1, args.seed)[0]
    # An installed package has its bytecode compiled by pip; an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile netrun's modules on every run.
    import compileall

    compileall.compile_dir(str(ROOT / "netrun"), quiet=1)
    netrun_validate(one, 1, work)  # warm-up: bytecode caches, page cache
    check_jsonschema([one], work)
    floor = [timed([sys.executable, "-c", "pass"])[0] for _ in range(args.repeat)]
    cold = [netrun_validate(one, 1, work)[0] for _ in range(args.repeat)]
    cjs_cold = [check_jsonschema([one], work) for _ in range(args.cjs_repeat)]
    probe = import_probe(one, work)
    slow = slowest_imports(one, work)

    # throughput
    results: list[SizeResult] = []
    for n in args.sizes:
        directory = work / f"n{n}"
        if directory.exists():
            shutil.rmtree(directory)
        files = generate(directory, n, args.seed)
        best_netrun, best_cjs, warnings = float("inf"), float("inf"), 0
        for _ in range(max(1, args.runs)):
            seconds, warnings = netrun_validate(directory, n, work)
            best_netrun = min(best_netrun, seconds)
            best_cjs = min(best_cjs, check_jsonschema(files, work))
        results.append(SizeResult(n, best_netrun, best_cjs, warnings))

    # one file inside the largest directory, as pre-commit validates the changed files only:
    # a network tool naming a network that is not validated makes netrun read the siblings
    biggest = max(args.sizes)
    inside = work / f"n{biggest}" / f"{network_name(0)}.yaml"
    in_dir = [netrun_validate(inside, 1, work)[0] for _ in range(3)]
    caller = next((i for i in range(biggest) if has_network_tool(i)), None)
    in_dir_net: list[float] = []
    if caller is not None:
        calling = work / f"n{biggest}" / f"{network_name(caller)}.yaml"
        in_dir_net = [netrun_validate(calling, 1, work)[0] for _ in range(2)]

    # -- report
    floor_med, floor_min = median_min(floor)
    cold_med, cold_min = median_min(cold)
    cjs_med, cjs_min = median_min(cjs_cold)
    print()
    print(f"Cold start, one file ({args.repeat} runs for netrun and python, {args.cjs_repeat} for check-jsonschema)")
    w = 44
    print(f"  {'':<{w}}{'median':>9}{'min':>9}")
    print(f"  {'python -c pass (floor)':<{w}}{floor_med:>8.3f}s{floor_min:>8.3f}s")
    print(f"  {'netrun validate FILE':<{w}}{cold_med:>8.3f}s{cold_min:>8.3f}s")
    print(f"  {'check-jsonschema FILE':<{w}}{cjs_med:>8.3f}s{cjs_min:>8.3f}s")
    print(f"  {'netrun above the floor':<{w}}{cold_med - floor_med:>8.3f}s")
    label = f"  same, beside {biggest - 1} other files (3 runs)"
    print(f"  {label:<{w}}{statistics.median(in_dir):>8.3f}s{min(in_dir):>8.3f}s")
    if in_dir_net:
        label = "  same, with a network tool (2 runs)"
        print(f"  {label:<{w}}{statistics.median(in_dir_net):>8.3f}s{min(in_dir_net):>8.3f}s")
    heavy = probe["heavy"]
    assert isinstance(heavy, dict)
    imported = [h for h in HEAVY_MODULES if heavy.get(h)]
    print(
        f"  modules imported by validate: {probe['modules']}; heavy ones: "
        + (", ".join(f"{h} ({len(heavy[h])} modules)" for h in imported) if imported else "none")
        + f" (checked: {', '.join(HEAVY_MODULES)})"
    )
    print("  import time by package (-X importtime, self): " + ", ".join(f"{p} {s * 1000:.0f}ms" for p, s in slow))

    print()
    print(f"Throughput (netrun validate DIR vs check-jsonschema FILES; best of {max(1, args.runs)})")
    header = f"  {'files':>6} | {'netrun':>8} {'files/s':>9} {'warn':>5} | {'check-jsonschema':>16} {'files/s':>9} | {'ratio':>6}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in results:
        print(
            f"  {r.n:>6} | {r.netrun_s:>7.2f}s {r.netrun_fps:>9.1f} {r.warnings:>5} | "
            f"{r.cjs_s:>15.2f}s {r.cjs_fps:>9.1f} | {r.netrun_fps / r.cjs_fps:>5.2f}x"
        )
    if len(results) >= 2:
        lo, hi = results[0], results[-1]
        if hi.n > lo.n:
            per_file = (hi.netrun_s - lo.netrun_s) / (hi.n - lo.n)
            cjs_per_file = (hi.cjs_s - lo.cjs_s) / (hi.n - lo.n)
            print(
                f"  marginal cost per file ({lo.n}->{hi.n}): netrun {per_file * 1000:.2f} ms, "
                f"check-jsonschema {cjs_per_file * 1000:.2f} ms"
            )

    print()
    cold_ok = cold_med <= COLD_START_TARGET_S
    target_n = 1000 if any(r.n == 1000 for r in results) else max(r.n for r in results)
    tr = next(r for r in results if r.n == target_n)
    ratio = tr.netrun_fps / tr.cjs_fps
    ratio_ok = ratio >= THROUGHPUT_TARGET_RATIO
    print("Targets")
    print(f"  cold start median {cold_med:.3f}s <= {COLD_START_TARGET_S}s: {'PASS' if cold_ok else 'MISS'}")
    print(f"  cold start ratio check-jsonschema / netrun: {cjs_med / cold_med:.2f}x")
    print(
        f"  throughput on {target_n} files {ratio:.2f}x check-jsonschema >= {THROUGHPUT_TARGET_RATIO}x: "
        f"{'PASS' if ratio_ok else 'MISS'}" + ("" if target_n == 1000 else " (target is defined on 1000 files)")
    )
    print(f"  heavy imports (litellm, mcp, fastapi, inngest) absent: {'PASS' if not imported else 'MISS'}")
    print(f"\n(total benchmark time {time.perf_counter() - started:.0f}s)")
    if args.check_targets and not (cold_ok and ratio_ok and not imported):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
