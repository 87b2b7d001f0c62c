"""The smallest networks that make one model call: through the direct OpenAI-compatible
client (``DIRECT``, formatted with the fake server's ``base``) or from a replies file
(``OFFLINE`` beside ``offline.replies.yaml`` holding ``REPLIES``). The start-up tests and
``bench/start.py`` run them."""

DIRECT = """\
name: direct
model: {{id: openai/x, api_base: "{base}", api_key: "${{FAKE_KEY}}"}}
agents:
  helper: {{description: answers, system: "Answer briefly."}}
router:
  rules: [{{if: "call_count < 1", agent: helper}}]
"""

OFFLINE = """\
name: offline
model: scripted/offline.replies.yaml
agents:
  helper: {description: answers, system: "Answer briefly."}
router:
  rules: [{if: "call_count < 1", agent: helper}]
"""

REPLIES = "helper:\n  - text: ok\n"
