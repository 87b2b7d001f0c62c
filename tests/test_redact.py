"""The redactor (``netrun.redact``): every encoding, overlapping secrets, cuts, streams, logs."""

from __future__ import annotations

import base64
import json
import logging
import re

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
        "tools": {"t": {"http": {"headers": {"Authorization": "Bearer ${TOKEN}"}, "url": "https://h/$${LITERAL}/${MISSING:-dflt-value}"}}},
        "mcp_servers": {"m": {"env": {"X": "${SHORT}"}}},
    }
    environ = {
        "API": "sk-api-value", "TOKEN": "tok-value-1", "LITERAL": "not-a-reference", "SHORT": "ab",
        "OPENAI_API_KEY": "sk-unreferenced-key", "AUTH": "on", "HOME": "/home/someone",
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
