"""The web console (/ui) in a real browser: Debian's headless Chromium, driven by Selenium,
against a real `netrun serve` (uvicorn on 127.0.0.1, behind NETRUN_API_TOKEN) and the fake
OpenAI-compatible model. Each test asserts on what the page shows (its DOM text), and saves
a screenshot of every page it visits (under pytest's tmp_path, or $NETRUN_SCREENSHOTS).

One browser and one server for the module: Chromium takes about a second to start.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from . import debian
from .fakes.http_server import FakeHttpServer
from .fakes.http_server import Reply as HttpReply
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not debian.has_chromium(CHROMIUM),
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver; .ci/run does)",
)

TOKEN = "console-test-token-3f9a"
ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NETRUN_API_TOKEN": TOKEN}
MODEL = 'model: {{id: openai/fake, api_base: "{llm}", api_key: "${{FAKE_LLM_KEY}}"}}\n'

NETWORKS = {
    "story": MODEL
    + """\
name: story
description: Writes one reply.
max_iter: 2
agents:
  writer: {{description: writes, system: "Write {{{{ input }}}}"}}
router:
  rules: [{{if: "call_count >= 1", stop: true}}, {{if: "true", agent: writer}}]
""",
    "ops": MODEL
    + """\
name: ops
max_iter: 3
agents:
  ops: {{description: runs commands, system: "Run {{{{ input }}}}", tools: [shell]}}
router:
  rules: [{{if: "call_count >= 1", stop: true}}, {{if: "true", agent: ops}}]
tools:
  shell:
    description: Run a shell command on the production host.
    parameters: {{cmd: {{type: string}}}}
    approval: {{timeout: 1h}}
    http: {{method: POST, url: "{effects}/run", body: {{cmd: "{{{{ args.cmd }}}}"}}, retries: 0}}
""",
    "asker": MODEL
    + """\
name: asker
max_iter: 3
state: {{done: {{type: boolean, default: false}}, answer: {{type: string}}}}
agents:
  asker: {{description: asks a human, system: "Ask about {{{{ input }}}}", tools: [ask_human, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: asker}}]
tools:
  ask_human:
    wait_for_event: {{event: app/human.answered, timeout: 1h}}
    parameters: {{question: {{type: string}}}}
  finish:
    parameters: {{answer: {{type: string}}}}
    state: {{done: true, answer: "{{{{ args.answer }}}}"}}
""",
}

LONG = " ".join(f"word{i}" for i in range(24)) + " the end."
HOSTILE = 'Here: <img src=x onerror="window.__pwned=1"> <b>bold?</b> done.'


@pytest.fixture(scope="module")
def effects() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        server.script("/run", HttpReply(200, {"ok": True}))
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared_llm: FakeLLM, effects: FakeHttpServer) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("console")
    for name, text in NETWORKS.items():
        (folder / f"{name}.yaml").write_text(text.format(llm=shared_llm.base_url, effects=effects.url))
    environ = {**os.environ, **ENV}
    served = Served(
        lambda port: create_app(ServeSettings.from_env(environ, (folder,), engine="local", data_dir=folder / "data", port=port))
    )
    with served:
        yield served


@pytest.fixture(scope="module")
def browser(server: Served) -> Iterator[WebDriver]:
    """Chromium, quit before the server stops (an open stream would hold the server's shutdown)."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named = os.environ.get("NETRUN_SCREENSHOTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Console:
    """The browser on the console, with the waits and screenshots every test uses."""

    def __init__(self, driver: WebDriver, url: str, screenshots: Path) -> None:
        self.driver = driver
        self.url = url
        self.screenshots = screenshots

    def open(self, hash: str = "/networks") -> None:
        self.driver.get(f"{self.url}/ui/#{hash}")

    def shot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
        return path

    def until(self, what: str, check: Callable[[WebDriver], Any], timeout: float = 15) -> Any:
        def guarded(driver: WebDriver) -> Any:
            try:
                return check(driver)
            except StaleElementReferenceException:  # the page redrew it between the find and the read
                return False

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(guarded)
        except TimeoutException:
            shot = self.shot("timed-out-" + "".join(c if c.isalnum() else "-" for c in what)[:60])
            raise AssertionError(f"timed out waiting for {what} (screenshot: {shot})\n{self.logs()}") from None

    def find(self, css: str, timeout: float = 15) -> WebElement:
        return self.until(f"an element {css!r}", lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, css)), None), timeout)  # type: ignore[no-any-return]

    def text(self, css: str) -> str:
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""

    def status(self) -> str:
        return self.text("#run-status")

    def wait_status(self, status: str, timeout: float = 20) -> None:
        self.until(f"the run to be {status} (it is {self.status()!r})", lambda d: self.status() == status, timeout)

    def stream_urls(self) -> list[str]:
        """The URLs of the streams the browser requested since the last call (its network log)."""
        import json

        sent = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                url = message["params"]["request"]["url"]
                if "/events" in url.partition("?")[0][len(self.url) :]:
                    sent.append(url)
        return sent

    def logs(self) -> str:
        try:
            return "\n".join(str(e.get("message")) for e in self.driver.get_log("browser"))
        except Exception:  # not every driver keeps the console log
            return ""

    def sign_in(self) -> None:
        self.open()
        self.find("#signin, #networks")
        if self.driver.find_elements(By.ID, "signin"):
            self.driver.find_element(By.ID, "token").send_keys(TOKEN)
            self.driver.find_element(By.CSS_SELECTOR, "#signin button").click()
            self.find("#networks")

    def start_run(self, network: str, text: str) -> str:
        self.open("/networks")
        form = self.find(f'section[data-network="{network}"] form.start-run')
        form.find_element(By.NAME, "input").send_keys(text)
        form.find_element(By.TAG_NAME, "button").click()
        self.until("the run page", lambda d: "#/runs/" in d.current_url)
        self.find("#run-status .status")
        return self.driver.current_url.rsplit("/", 1)[1]


@pytest.fixture
def console(browser: WebDriver, server: Served, screenshots: Path, llm: FakeLLM) -> Iterator[Console]:
    page = Console(browser, server.url, screenshots)
    page.sign_in()
    yield page
    # The page works within its Content-Security-Policy (a violation is a SEVERE entry) and
    # throws nothing; a 401 is the sign-in probe's answer, expected.
    problems = [e["message"] for e in browser.get_log("browser") if e.get("level") == "SEVERE" and " 401 " not in e["message"]]
    assert not problems, problems


def test_sign_in_then_the_networks_and_their_graphs(browser: WebDriver, server: Served, screenshots: Path) -> None:
    page = Console(browser, server.url, screenshots)
    page.open()
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    page.find("#signin")
    page.shot("01-sign-in")
    page.driver.find_element(By.ID, "token").send_keys("not-the-token")
    page.driver.find_element(By.CSS_SELECTOR, "#signin button").click()
    page.until("the refusal", lambda d: "not this server's" in page.text("#signin-error"))
    assert browser.execute_script("return sessionStorage.getItem('netrun.apiToken')") is None
    token = page.driver.find_element(By.ID, "token")
    token.clear()
    token.send_keys(TOKEN)
    page.driver.find_element(By.CSS_SELECTOR, "#signin button").click()
    page.find('section[data-network="ops"] svg.graph')
    names = [s.get_attribute("data-network") for s in browser.find_elements(By.CSS_SELECTOR, "section.network")]
    assert sorted(names) == ["asker", "ops", "story"]
    nodes = page.until(
        "the graph of asker",
        lambda d: [g.get_attribute("data-node") for g in d.find_elements(By.CSS_SELECTOR, '[data-network="asker"] g.node')],
    )
    assert {"start", "router", "asker", "stop"} <= set(nodes)
    assert any("waits for app/human.answered" in n for n in nodes)
    gated = browser.find_elements(By.CSS_SELECTOR, '[data-network="ops"] g.node.wait')
    assert [g.get_attribute("data-node") for g in gated] == ["shell: HTTP POST + approval"]
    page.shot("02-networks")


def test_a_run_shows_its_route_usage_and_model_markup_as_text(console: Console, llm: FakeLLM) -> None:
    llm.reset(Reply(text=HOSTILE))
    run_id = console.start_run("story", "a story")
    console.wait_status("completed")
    console.until("the model's text", lambda d: console.text("#parts .part.text .body") == HOSTILE)
    assert console.driver.find_elements(By.CSS_SELECTOR, "#parts img, #parts b") == []  # shown as text, not markup
    assert console.driver.execute_script("return window.__pwned") is None
    console.until(
        "the usage and cost", lambda d: "cost $" in console.text("#usage") and "total 0 tokens" not in console.text("#usage")
    )
    assert console.text("#route").splitlines() == ["writer (rule 2: true)", "stop (rule 1: call_count >= 1)"]
    console.shot("03-run-completed")
    console.open("/runs")
    row = console.find(f'tr[data-run="{run_id}"]')
    assert "story" in row.text and "completed" in row.text
    console.shot("04-runs")


def answer_wait(console: Console, data: str) -> None:
    form = console.find("#waits form.wait")
    assert "app/human.answered" in form.text
    field = form.find_element(By.NAME, "data")
    field.clear()
    field.send_keys(data)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def asker_script(llm: FakeLLM, pace: float) -> None:
    """Ask a human; once answered, a long reply (streamed while the page watches) and finish."""
    llm.reset(
        Reply(text="Asking.", tool_calls=[ToolCall("ask_human", {"question": "which colour?"})]),
        lambda body: Reply(
            text=LONG, pace=pace, tool_calls=[ToolCall("finish", {"answer": "blue" if "blue" in str(body["messages"]) else "?"})]
        ),
    )


def text_of_turn(console: Console, n: int) -> str:
    parts = console.driver.find_elements(By.CSS_SELECTOR, "#parts .part.text .body")
    return parts[n].text if len(parts) > n else ""


def test_a_wait_is_answered_from_its_form_and_the_reply_streams_in(console: Console, llm: FakeLLM) -> None:
    asker_script(llm, pace=0.05)
    console.start_run("asker", "colours")
    console.find("#waits form.wait")
    console.wait_status("waiting")
    console.shot("05-wait")
    answer_wait(console, '{"colour": "blue"}')
    partial = console.until("part of the reply, before the rest", lambda d: (t := text_of_turn(console, 1)) != LONG and t)
    assert LONG.startswith(partial) and "the end." not in partial
    console.shot("06-reply-streaming")
    console.wait_status("completed")
    assert text_of_turn(console, 1) == LONG
    console.until("the state", lambda d: '"answer": "blue"' in console.text("#state"))
    asked = next(p for p in console.driver.find_elements(By.CSS_SELECTOR, "#parts .part.tool") if "ask_human" in p.text)
    assert "blue" in asked.find_element(By.CSS_SELECTOR, "pre.result").text
    assert "No wait is open." in console.text("#waits")
    console.shot("07-wait-answered")


def test_approving_one_of_two_gated_calls_runs_only_it(console: Console, llm: FakeLLM, effects: FakeHttpServer) -> None:
    effects.hits.clear()
    llm.reset(
        Reply(text="two", tool_calls=[ToolCall("shell", {"cmd": "echo harmless"}), ToolCall("shell", {"cmd": "rm -rf /"})]),
        Reply(text="One ran, one was refused."),
    )
    console.start_run("ops", "the cleanup")
    console.until("two approval cards", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#approvals .approval")) == 2)
    console.wait_status("waiting")
    console.shot("08-approvals")
    cards = console.driver.find_elements(By.CSS_SELECTOR, "#approvals .approval")
    echo = next(c for c in cards if "echo harmless" in c.find_element(By.CSS_SELECTOR, "pre.args").text)
    echo.find_element(By.NAME, "reason").send_keys("read-only, fine")
    echo.find_element(By.CSS_SELECTOR, "button.approve").click()
    console.until("one card left", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#approvals .approval")) == 1)
    left = console.driver.find_element(By.CSS_SELECTOR, "#approvals .approval pre.args").text
    assert "rm -rf /" in left
    tools = console.until(
        "the approved call's result",
        lambda d: [
            p for p in d.find_elements(By.CSS_SELECTOR, "#parts .part.tool") if p.find_elements(By.CSS_SELECTOR, "pre.result")
        ],
    )
    assert len(tools) == 1 and "echo harmless" in tools[0].text and "approved: read-only, fine" in tools[0].text
    rm = next(p for p in console.driver.find_elements(By.CSS_SELECTOR, "#parts .part.tool") if "rm -rf /" in p.text)
    assert "waits for approval" in rm.text and not rm.find_elements(By.CSS_SELECTOR, "pre.result")
    console.wait_status("waiting")  # the run parks again once the approved call's turn goes on waiting
    assert [h.json()["cmd"] for h in effects.hits_for("/run")] == ["echo harmless"]  # the far side: what ran
    console.shot("09-one-approved")
    card = console.driver.find_element(By.CSS_SELECTOR, "#approvals .approval")
    card.find_element(By.NAME, "reason").send_keys("never on production")
    card.find_element(By.CSS_SELECTOR, "button.reject").click()
    console.wait_status("completed")
    rm = next(p for p in console.driver.find_elements(By.CSS_SELECTOR, "#parts .part.tool") if "rm -rf /" in p.text)
    assert "denied: never on production" in rm.text
    assert "No call waits for approval." in console.text("#approvals")
    assert [h.json()["cmd"] for h in effects.hits_for("/run")] == ["echo harmless"]
    console.shot("10-other-rejected")


def test_chatting_with_a_network_in_a_thread(console: Console, llm: FakeLLM) -> None:
    llm.reset(Reply(text="Hello! How can I help?", pace=0.02), Reply(text=LONG, pace=0.05))
    console.open("/threads")
    Select(console.find("#new-thread select")).select_by_value("story")
    console.driver.find_element(By.CSS_SELECTOR, "#new-thread button").click()
    box = console.find("#chat textarea")
    box.send_keys("hi there")
    console.driver.find_element(By.CSS_SELECTOR, "#chat button").click()
    thread_id = console.find("#thread-id").text
    console.until("the first reply", lambda d: "Hello! How can I help?" in console.text("#messages"))
    console.shot("11-chat-first")
    box = console.find("#chat textarea")
    box.send_keys("capital of France?")
    console.until("the send button back", lambda d: d.find_element(By.CSS_SELECTOR, "#chat button").is_enabled())
    console.driver.find_element(By.CSS_SELECTOR, "#chat button").click()
    partial = console.until("the reply streaming in", lambda d: (t := console.text("#live .reply")) and t != LONG and t)
    assert LONG.startswith(partial)
    console.until("the second reply", lambda d: LONG in console.text("#messages"))
    roles = [m.get_attribute("data-role") for m in console.driver.find_elements(By.CSS_SELECTOR, "#messages .msg")]
    assert roles == ["user", "assistant", "user", "assistant"], roles
    second = llm.requests[-1]["messages"]
    assert [m["content"] for m in second if m["role"] == "user"][-2:] == ["hi there", "capital of France?"]
    console.shot("12-chat-second")
    streams = console.stream_urls()
    assert [u for u in streams if f"/threads/{thread_id}/events?" in u and "live=true" in u and "token=" in u], streams
    console.open("/threads")
    row = console.find(f'tr[data-thread="{thread_id}"]')
    assert "4" in row.text
    console.shot("13-threads")


def test_a_reload_mid_run_picks_the_run_up_where_it_is(console: Console, llm: FakeLLM) -> None:
    asker_script(llm, pace=0.1)
    run_id = console.start_run("asker", "slowly")
    answer_wait(console, '{"colour": "blue"}')
    console.until("the reply streaming", lambda d: text_of_turn(console, 1).startswith("word0"))
    assert console.status() == "running"
    console.driver.refresh()
    console.find("#run-status .status")
    assert console.driver.current_url.endswith(f"#/runs/{run_id}")
    console.until("the reply again, after the reload", lambda d: text_of_turn(console, 1).startswith("word0"))
    assert console.status() == "running" and text_of_turn(console, 1) != LONG
    console.shot("14-reloaded-mid-run")
    console.wait_status("completed")
    assert text_of_turn(console, 1) == LONG
    console.until("the state", lambda d: '"answer": "blue"' in console.text("#state"))
    console.shot("15-reloaded-run-completed")
    streams = console.stream_urls()
    assert any(f"/runs/{run_id}/events?token=" in u for u in streams), streams  # a stream token, in an EventSource
    assert not any(TOKEN in u for u in streams), streams  # never the API token


def test_the_page_follows_its_run_across_a_server_restart(console: Console, llm: FakeLLM, server: Served) -> None:
    """The server restarts while the page watches a waiting run: the page's stream
    reconnects by itself (after the last event it saw), and the run goes on from its form."""
    asker_script(llm, pace=0.0)
    console.start_run("asker", "across a restart")
    console.find("#waits form.wait")
    console.wait_status("waiting")
    server.restart()
    console.until("the stream to reconnect", lambda d: console.text("#stream-state") == "open", timeout=20)
    cut = [e["message"] for e in console.driver.get_log("browser") if e.get("level") == "SEVERE" and " 401 " not in e["message"]]
    assert all("ERR_INCOMPLETE_CHUNKED_ENCODING" in m or "ERR_CONNECTION_REFUSED" in m for m in cut), cut  # the stop, expected
    answer_wait(console, '{"colour": "blue"}')
    console.wait_status("completed")
    assert text_of_turn(console, 1) == LONG
    assert len(console.driver.find_elements(By.CSS_SELECTOR, "#parts .part.text")) == 2  # nothing shown twice
    console.shot("16-after-server-restart")


def test_the_console_is_served_with_its_policy_and_no_token(server: Served) -> None:
    """What a browser is given before it signs in: the files, with a CSP that forbids inline
    script, and nothing of the API."""
    page = httpx.get(f"{server.url}/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in page.text and "onclick" not in page.text
    assert httpx.get(f"{server.url}/ui", follow_redirects=False).status_code == 308
    module = httpx.get(f"{server.url}/ui/app.js")
    assert module.headers["content-type"].startswith("text/javascript") and module.headers["x-content-type-options"] == "nosniff"
    missing = httpx.get(f"{server.url}/ui/app.py")
    assert missing.status_code == 404 and "no file named 'app.py'" in missing.json()["detail"]
    assert httpx.get(f"{server.url}/ui/..%2F..%2Fsettings.py").status_code == 404
    assert httpx.get(f"{server.url}/networks/story/graph").status_code == 401
    graph = httpx.get(f"{server.url}/networks/story/graph", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert {n["shape"] for n in graph["nodes"]} >= {"start", "router", "agent", "stop"}
    assert httpx.get(f"{server.url}/networks/nope/graph", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


UI = Path(__file__).resolve().parents[1] / "netrun" / "serve" / "ui"


def test_the_console_files_refer_only_to_each_other_and_never_parse_markup() -> None:
    """Every module, script and stylesheet a console file names is one of its files (no CDN,
    nothing to build), and no file hands text to the HTML parser (innerHTML and its kin)."""
    import re

    files = {p.name: p.read_text(encoding="utf-8") for p in UI.iterdir()}
    named = set()
    for name, text in files.items():
        named |= set(re.findall(r'from "\./([\w.-]+)"', text)) | set(re.findall(r'(?:src|href)="([\w.-]+\.(?:js|css))"', text))
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", text), name
        assert not re.search(r"https?://", text.replace("http://www.w3.org/2000/svg", "")), name  # no CDN
    assert named and named <= set(files), named - set(files)
    assert set(files) - named == {"index.html"}  # nothing shipped that nothing loads


def test_without_a_token_the_console_needs_no_sign_in(
    browser: WebDriver, shared_llm: FakeLLM, tmp_path: Path, screenshots: Path
) -> None:
    """A loopback server without NETRUN_API_TOKEN: no sign-in, streams open without a token."""
    (tmp_path / "story.yaml").write_text(NETWORKS["story"].format(llm=shared_llm.base_url))
    environ = {**os.environ, **{k: v for k, v in ENV.items() if k != "NETRUN_API_TOKEN"}}
    environ.pop("NETRUN_API_TOKEN", None)
    shared_llm.reset(Reply(text="Open server."))
    with Served(
        lambda port: create_app(
            ServeSettings.from_env(environ, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=port)
        )
    ) as open_server:
        page = Console(browser, open_server.url, screenshots)
        browser.get(f"{open_server.url}/ui")  # the redirect to /ui/
        page.find("#networks")
        assert not browser.find_elements(By.ID, "signin") and not browser.find_element(By.ID, "signout").is_displayed()
        page.start_run("story", "hello")
        page.wait_status("completed")
        assert page.text("#parts .part.text .body") == "Open server."
        page.shot("17-no-token")
        browser.get("about:blank")  # close the page's streams before the server stops
