"""`mlxcli chat` with a gpt-oss model: the analysis channel dimmed before the answer, or hidden; history kept right."""

from __future__ import annotations

import json
import re

import pexpect
import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from tests.chat.test_repl_pty import FOOTER, PROMPT, Terminal
from tests.support.harmony import msg, reply
from tests.support.models import Recording

THOUGHT = "Two plus two is four."
ANSWER = "It is 4."


def respond(prompt: str) -> str:
    asked = prompt.rsplit("<|start|>user<|message|>", 1)[-1]
    if asked.startswith("And 3 + 3?"):
        return reply(msg("analysis", "Six."), msg("final", "It is 6.", end="<|return|>"))
    return reply(msg("analysis", THOUGHT), msg("commentary", "Adding."), msg("final", ANSWER, end="<|return|>"))


@pytest.mark.slow  # mlxcli chat in a pseudo-terminal, in a subprocess
def test_the_chat_shows_reasoning_dimmed_then_the_answer(harmony_server, tmp_path):
    recording = Recording(respond)
    server = harmony_server(recording)
    t = Terminal(tmp_path, "--url", server.url + "/v1")
    try:
        t.expect(PROMPT)
        t.enter("What is 2 + 2?")
        t.expect(re.escape(THOUGHT), "Adding.", re.escape(ANSWER), FOOTER, PROMPT)
        t.enter("And 3 + 3?")
        t.expect("It is 6.", FOOTER, PROMPT)
        t.enter("/exit")
        t.expect(pexpect.EOF)
    finally:
        t.child.close(force=True)
    assert "\x1b[2m" in t.transcript and "<|" not in t.transcript  # dimmed; no markup on the screen
    # The first answer went back as a final message (preamble and answer, as the model's text); its reasoning not.
    assert f"<|start|>assistant<|channel|>final<|message|>Adding.\n\n{ANSWER}<|end|><|start|>user<|message|>And 3 + 3?" in recording.prompts[-1]
    assert THOUGHT not in recording.prompts[-1]


def test_one_shot_hides_or_returns_the_reasoning(harmony_server, tmp_path):
    server = harmony_server(respond)
    run = CliRunner().invoke
    env = {"MLXCLI_HOME": str(tmp_path)}
    hidden = run(app, ["chat", "--url", server.url, "-p", "What is 2 + 2?", "--hide-reasoning"], env=env)
    assert (hidden.exit_code, hidden.stdout) == (0, f"Adding.\n\n{ANSWER}\n")
    out = json.loads(run(app, ["chat", "--url", server.url, "-p", "What is 2 + 2?", "--json"], env=env).stdout)
    assert (out["content"], out["reasoning"]) == (f"Adding.\n\n{ANSWER}", THOUGHT)
