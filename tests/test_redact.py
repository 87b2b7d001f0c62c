"""The redactor (``netrun.redact``): every encoding, overlapping secrets, cuts, streams, logs."""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import traceback
import unicodedata
from urllib.parse import quote

import httpx
import pytest

from netrun.redact import MIN_LENGTH, Secrets, encodings, redact_logs

SECRET = "s3cr3t+T0ken/with spaces&more==|^x"
AWKWARD = [SECRET, "tok@en:with;semi,comma$", "ünïcode-sécret", "%41%zz~'()*!", "x{y}`z<>[a]\\b", 'q"uo\\te\nnl']


def pieces(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


@pytest.mark.parametrize("secret", AWKWARD)
def test_every_encoding_a_server_may_echo_is_redacted(secret: str) -> None:
    secrets = Secrets([secret])
    echoes = [secret, json.dumps(secret), json.dumps(secret, ensure_ascii=False), repr(secret.encode())]
    if "\n" not in secret:  # httpx refuses control characters in a URL
        echoes += [
            httpx.URL(f"http://h/p/{secret}").raw_path.decode(),  # as httpx sends it in a path
            httpx.URL("http://h/", params={"k": secret}).query.decode(),  # in a query
            str(httpx.URL(f"http://h/?{secret}")),
        ]
    echoes += [re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), e) for e in echoes if "%" in e]  # lower-case escapes
    for echo in echoes:
        redacted = secrets.redact(f"before {echo} after")
        assert "***" in redacted, echo
        assert not [p for p in pieces(secret) if p in redacted], (echo, redacted)


@pytest.mark.parametrize("prefix", ["", "u:", "us:", "use:"])
def test_base64_at_any_offset_is_redacted(prefix: str) -> None:
    """An HTTP Basic auth header encodes ``user:secret``: the secret starts at any offset mod 3."""
    secrets = Secrets([SECRET])
    header = base64.b64encode(f"{prefix}{SECRET}".encode()).decode()
    redacted = secrets.redact(f"Authorization: Basic {header}")
    assert "***" in redacted
    # What is left of the encoding is at most the prefix's characters and two mixed ones.
    left = redacted.removeprefix("Authorization: Basic ").replace("***", "")
    assert len(left) <= len(prefix) * 4 // 3 + 3, redacted


def test_overlapping_and_touching_secrets_leave_no_piece_behind() -> None:
    one, two = "abcdefgh1234", "gh1234567890"
    secrets = Secrets([one, two])
    assert secrets.redact(f"x {one}{two[6:]} y") == "x *** y"  # the two overlap by 'gh1234': one mask
    assert secrets.redact(f"x {one}{two} y") == "x *** y"  # touching
    assert secrets.redact(f"{two}{two}") == "***"


def test_short_values_are_not_secrets() -> None:
    """Masking "on" or "80" everywhere would corrupt every text and hide next to nothing."""
    secrets = Secrets(["on", "80", "x" * (MIN_LENGTH - 1)])
    assert not secrets
    assert secrets.redact("port 80 is on") == "port 80 is on"
    assert all(len(form) >= MIN_LENGTH for form in encodings("abcd/"))


def test_redaction_comes_before_the_cut() -> None:
    secrets = Secrets([SECRET])
    text = "x" * 1000 + SECRET + "y" * 10
    naive = secrets.redact(text[-20:])  # cut first: the second half escapes
    assert any(p in naive for p in pieces(SECRET))
    tail = secrets.tail(text, 20)
    assert tail == ("x" * 1000 + "***" + "y" * 10)[-20:]
    assert secrets.head(SECRET + "rest", 2) == "**"


def test_a_text_that_starts_inside_a_secret_loses_its_unrecognisable_start() -> None:
    """A file's tail read from an offset may begin with the end of a secret."""
    secrets = Secrets([SECRET])
    text = SECRET[5:] + "z" * 200  # read from the middle of the secret
    tail = secrets.tail(text, 100, starts_cut=True)
    assert tail == "z" * 100
    assert not [p for p in pieces(SECRET) if p in secrets.tail(text, 500, starts_cut=True)]
    assert secrets.tail(text, 500) == text  # not cut at the start: kept (nothing to recognise)


def test_a_streamed_secret_split_anywhere_never_reaches_the_sink() -> None:
    secrets = Secrets([SECRET])
    text = f"the key is {SECRET}, and {SECRET}!"
    for i in range(1, len(text)):
        for j in range(i, len(text), 7):
            out: list[str] = []
            stream = secrets.stream(out.append)
            for piece in (text[:i], text[i:j], text[j:]):
                stream.write(piece)
            stream.flush()
            assert "".join(out) == secrets.redact(text), (i, j)
            assert not [p for chunk in out for p in pieces(SECRET, 4) if p in chunk], (i, j, out)


def test_a_networks_secrets_are_its_env_values() -> None:
    definition = {
        "model": {"id": "openai/x", "api_key": "${API}"},
        "tools": {
            "t": {
                "http": {"headers": {"Authorization": "Bearer ${TOKEN}"}, "url": "https://h/$${LITERAL}/${MISSING:-dflt-value}"}
            }
        },
        "mcp_servers": {"m": {"env": {"X": "${SHORT}"}}},
    }
    environ = {
        "API": "sk-api-value",
        "TOKEN": "tok-value-1",
        "LITERAL": "not-a-reference",
        "SHORT": "ab",
        "OPENAI_API_KEY": "sk-unreferenced-key",
        "AUTH": "on",
        "HOME": "/home/someone",
    }
    secrets = Secrets.for_definition(definition, environ)
    text = "sk-api-value tok-value-1 not-a-reference dflt-value ab sk-unreferenced-key on /home/someone"
    assert secrets.redact(text) == "*** *** not-a-reference dflt-value ab *** on /home/someone"


def test_values_keys_and_exceptions() -> None:
    secrets = Secrets([SECRET])
    value = {SECRET: [f"a {SECRET}", 3, None, {"k": SECRET}], "n": 1.5}
    assert secrets.redact_value(value) == {"***": ["a ***", 3, None, {"k": "***"}], "n": 1.5}
    exc = secrets.scrub(ValueError(f"bad {SECRET}"))
    assert isinstance(exc, ValueError) and str(exc) == "bad ***"


@pytest.mark.parametrize("secret", AWKWARD)
def test_a_secret_anywhere_in_a_long_history_is_found_in_every_form(secret: str) -> None:
    # A model request carries the whole history: each form (quotes, backslashes, newlines,
    # non-ASCII included) must be found inside one message among many, as a key too.
    secrets = Secrets([secret])
    history = [{"role": "assistant", "content": f"turn {i}"} for i in range(300)]
    for form in sorted(encodings(secret)):
        for where in ("value", "key"):
            leaky = [dict(m) for m in history]
            if where == "value":
                leaky[150]["content"] = f"echo {form} back"
            else:
                leaky[150][f"x{form}"] = "v"
            out = secrets.redact_value(leaky)
            assert form not in json.dumps(out, ensure_ascii=False), (form, where)
            assert out[149] == history[149] and len(out) == 300


def test_a_value_holding_no_secret_is_returned_itself() -> None:
    # Not a copy: a request's history is sent every iteration, and copying it made each
    # iteration cost more than the one before.
    secrets = Secrets([SECRET])
    history = [{"role": "assistant", "content": f"turn {i}", "calls": [{"id": i}]} for i in range(200)]
    assert secrets.redact_value(history) is history
    # Only strings are redacted: a number that reads as a secret in the dump stays.
    digits = Secrets(["12345678"])
    numbers = {12345678: [12345678, "a 12345678"]}
    assert digits.redact_value(numbers) == {12345678: [12345678, "a ***"]}
    # Not JSON (a set inside): walked as before, its strings left as they are.
    odd = {"tags": {SECRET}, "text": SECRET}
    assert secrets.redact_value(odd) == {"tags": {SECRET}, "text": "***"}


def test_log_records_are_redacted_whoever_logs_them(caplog: pytest.LogCaptureFixture) -> None:
    secret = "log-secret-value-77"
    redact_logs(Secrets([secret]))
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.library").debug("sent %s", {"auth": secret})
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        logging.getLogger("netrun.x").exception("boom")
    assert "sent {'auth': '***'}" in caplog.text and "failed with ***" in caplog.text
    assert secret not in caplog.text


# --- forms the first redactor missed ---


@pytest.mark.parametrize("form", ["NFC", "NFD", "NFKC", "NFKD"])
def test_a_unicode_secret_is_redacted_in_every_normal_form(form: str) -> None:
    """A service may normalize what it echoes (macOS file names are NFD, many stores NFC)."""
    secret = unicodedata.normalize("NFC", "pässwörd-ü-ﬁx")  # 'ﬁ' changes under NFKC
    secrets = Secrets([secret])
    echo = unicodedata.normalize(form, secret)
    for text in (echo, quote(echo, safe=""), json.dumps(echo)[1:-1]):
        assert secrets.redact(f"got {text}!") == "got ***!", (form, text)


def test_an_html_escaped_secret_is_redacted() -> None:
    """An HTML error page quotes the header it received, escaped."""
    secret = "tok<en>&'\"x"
    secrets = Secrets([secret])
    for text in (html.escape(secret), html.escape(secret, quote=False)):
        assert secrets.redact(f"<p>{text}</p>") == "<p>***</p>", text


@pytest.mark.parametrize("prefix", ["", "u:", "us:", "use:", "user:"])
@pytest.mark.parametrize("secret", ["pa$s", "p4ss5", "passw0"])
def test_short_secrets_in_basic_auth_are_redacted_at_any_offset(prefix: str, secret: str) -> None:
    """A 4-character password is a secret (MIN_LENGTH); its base64 bits count however few."""
    secrets = Secrets([secret])
    for tail in ("", "!", "!!"):
        header = base64.b64encode(f"{prefix}{secret}{tail}".encode()).decode()
        redacted = secrets.redact(f"Basic {header}")
        assert "***" in redacted, (prefix, secret, tail, header)


def test_exceptions_whose_text_is_not_their_args_are_scrubbed() -> None:
    """OSError prints strerror and filename, a library error its own fields, a traceback
    every chained exception and note: what they show is clean after scrub."""
    secrets = Secrets([SECRET])

    class UrlFailedError(Exception):
        def __init__(self, url: str) -> None:
            super().__init__("failed")
            self.url = url

        def __str__(self) -> str:
            return f"failed on {self.url}"

    oserror = secrets.scrub(FileNotFoundError(2, f"gone {SECRET}", f"/run/{SECRET}"))
    assert isinstance(oserror, FileNotFoundError) and SECRET not in str(oserror) and "gone ***" in str(oserror)
    custom = UrlFailedError(f"http://h/?k={SECRET}")
    try:
        try:
            raise OSError(f"connect {SECRET}")
        except OSError as inner:
            raise custom from inner
    except UrlFailedError as exc:
        exc.add_note(f"while sending {SECRET}")
        scrubbed = secrets.scrub(exc)
    assert isinstance(scrubbed, UrlFailedError) and type(scrubbed).__name__ == "UrlFailedError"
    assert str(scrubbed) == "failed on http://h/?k=***"
    shown = "".join(traceback.format_exception(scrubbed))
    assert "failed on http://h/?k=***" in shown and "connect ***" in shown and "while sending ***" in shown
    assert SECRET not in shown
    group = secrets.scrub(ExceptionGroup("two", [ValueError(SECRET), OSError(2, SECRET)]))
    assert SECRET not in "".join(traceback.format_exception(group))
