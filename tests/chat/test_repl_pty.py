"""The interactive chat in a real pseudo-terminal (pexpect): type, watch, interrupt, use every command.

The first session talks to a real server in this process whose scripted model answers
``Reply N: <question>`` (N = the questions it saw), so history, /retry, /clear and /system show
in the answers. The second runs the in-process engine on a tiny random model and recalls input
history from the first. `mlxcli convo export` then shows what was stored.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys

import pexpect
import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from tests.chat.conftest import LONG_END
from tests.support.models import scripted_of
from tests.tools.replies import REASONED, REASONED_ANSWER, THOUGHT

pytestmark = pytest.mark.slow  # mlxcli chat in a pseudo-terminal, in a subprocess

PROMPT = ">>> "
FOOTER = "s to first token"
UP, ALT_ENTER, CTRL_D = "\x1b[A", "\x1b\r", "\x04"
GAP = r"(?:\s|\x1b\[[0-9;]*m)+"  # spaces, and the colour codes between a table's columns


class Terminal:
    """`mlxcli chat` in a pseudo-terminal; everything it wrote is kept in ``transcript``."""

    def __init__(self, home, *args: str):
        env = {
            **os.environ,
            "MLXCLI_HOME": str(home),
            "TERM": "xterm-256color",
            "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor position requests
        }
        env.pop("NO_COLOR", None)
        self.log = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable, ["-m", "mlxcli", "chat", *args], env=env, encoding="utf-8", dimensions=(40, 120), timeout=30
        )
        self.child.logfile_read = self.log

    @property
    def transcript(self) -> str:
        return self.log.getvalue()

    def expect(self, *patterns: str) -> re.Match:
        for pattern in patterns:
            self.child.expect(pattern)
        return self.child.match

    def enter(self, text: str = "") -> None:
        self.child.send(text + "\r")  # what a terminal sends for Enter

    def ask(self, text: str, answer: str) -> None:
        self.enter(text)
        self.expect(re.escape(answer), FOOTER, PROMPT)

    def command(self, text: str, *shows: str) -> re.Match:
        self.enter(text)
        match = self.expect(*shows)
        self.expect(PROMPT)
        return match


def convo_export(home, conversation_id: str) -> dict:
    result = CliRunner().invoke(app, ["convo", "export", conversation_id], env={"MLXCLI_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def server(chat_engine, serve):
    return serve(chat_engine)


def test_a_whole_session_in_a_terminal(server, chat_engine, tiny_model_dir, tmp_path):
    model = scripted_of(chat_engine)
    t = Terminal(tmp_path, "--url", server.url, "--system", "Be terse.")
    try:
        t.expect(f"mlxcli chat · scripted \\({re.escape(server.url)}/v1/chat/completions\\)", PROMPT)
        t.ask("hello", "Reply 1: hello")

        # A long answer streams; Ctrl-C stops it and the chat goes on, with the part that arrived.
        model.step_delay = 0.03
        t.enter("tell me a long story")
        t.expect("word3 ")  # streamed: the start is on screen long before the end is generated
        t.child.sendintr()
        t.expect(r"stopped \(Ctrl-C\)", PROMPT)
        model.step_delay = 0
        t.ask("what now", "Reply 3: what now")  # the interrupted exchange is part of the conversation
        t.command("/retry", "Reply 3: what now", FOOTER)

        t.command("/system Talk like a pirate.", "system prompt set")
        t.ask("ahoy", "Arr! Reply 4: ahoy")

        # Multi-line input: a trailing backslash, Alt-Enter, a """ block.
        t.enter("line one\\")
        t.ask("line two", "Arr! Reply 5: line one / line two")
        t.ask(f"first{ALT_ENTER}second", "Arr! Reply 6: first / second")
        t.enter('"""')
        t.enter("quoted a")
        t.ask('quoted b"""', "Arr! Reply 7: quoted a / quoted b")

        # Ctrl-C at the prompt clears the line, and does not leave.
        t.child.send("half typed")
        t.child.sendintr()
        t.expect(PROMPT)

        t.command("/history", r"\[1\] you: ", "hello", r"\[2\] you: ", "tell me a long story", "word0", r"\[7\] you: ")
        t.enter("/stats")
        first_id = t.expect(rf"conversation{GAP}(conv_\w+)").group(1)
        t.expect(rf"exchanges{GAP}7", PROMPT)
        md, js = tmp_path / "talk.md", tmp_path / "talk.json"
        t.command(f"/export {md}", r"wrote 7 exchange\(s\)")
        t.command(f"/export {js}", r"wrote 7 exchange\(s\)")
        t.command("/export notes.txt", "name a .md or .json file")
        t.command("/help", "/clear", "/system", "/retry", "/history", "/stats", "/export FILE", "/exit", "Alt-Enter")
        t.command("/nonsense", "unknown command /nonsense")

        t.command("/clear", "new conversation")
        t.ask("hello again", "Arr! Reply 1: hello again")
        t.enter("/exit")
        saved = t.expect(r"saved: (conv_\w+), (conv_\w+)").groups()
        t.expect(pexpect.EOF)
        t.child.close()
        assert t.child.exitstatus == 0
    finally:
        model.step_delay = 0
        t.child.close(force=True)

    assert not any("half typed" in prompt for prompt in model.prompts)
    assert LONG_END not in t.transcript
    assert saved[0] == first_id

    # convo export shows the session: every exchange a turn, chained, the retry a branch.
    conversation = convo_export(tmp_path, first_id)
    turns = conversation["turns"]
    questions = [t_["input"][0]["content"] for t_ in turns]
    assert questions == [
        "hello", "tell me a long story", "what now", "what now", "ahoy", "line one\nline two", "first\nsecond",
        "quoted a\nquoted b",
    ]
    assert {t_["source"] for t_ in turns} == {"chat"}
    long_turn = turns[1]
    assert long_turn["status"] == "incomplete" and long_turn["output"][0]["content"].startswith("word0 word1")
    assert turns[2]["previous_id"] == turns[3]["previous_id"] == long_turn["id"]  # /retry: a branch
    assert [t_["instructions"] for t_ in turns][3:5] == ["Be terse.", "Talk like a pirate."]
    assert convo_export(tmp_path, saved[1])["turns"][0]["input"][0]["content"] == "hello again"

    # /export wrote the conversation as it stands (the retried answer replaced).
    exported = json.loads(js.read_text())
    assert exported["id"] == first_id and len(exported["turns"]) == 7
    assert [t_["id"] for t_ in exported["turns"]] == [t_["id"] for t_ in turns if t_["id"] != turns[2]["id"]]
    assert "**User**\n\nhello\n" in md.read_text() and "Arr! Reply 7: quoted a / quoted b" in md.read_text()

    # A second session, on the in-process engine: input history survived; Ctrl-D leaves.
    t2 = Terminal(tmp_path, "-m", str(tiny_model_dir), "--max-tokens", "3", "--temperature", "0")
    try:
        t2.expect(f"mlxcli chat · {tiny_model_dir.name} \\(in-process\\)", PROMPT)
        t2.child.send(UP + UP)  # the last input was /exit; the one before, "hello again"
        t2.enter()
        t2.expect(FOOTER, PROMPT)
        t2.child.send(CTRL_D)
        third = t2.expect(r"saved: (conv_\w+)").group(1)
        t2.expect(pexpect.EOF)
        t2.child.close()
        assert t2.child.exitstatus == 0
    finally:
        t2.child.close(force=True)
    recalled = convo_export(tmp_path, third)["turns"][0]
    assert (recalled["input"][0]["content"], recalled["model"]) == ("hello again", tiny_model_dir.name)
    history = (tmp_path / "chat_history").read_text()
    assert "+hello again" in history and "+/retry" in history


@pytest.mark.parametrize("api, path", [("responses", "/v1/responses"), ("anthropic", "/v1/messages")])
def test_the_other_apis_in_a_terminal_with_reasoning(api, path, tool_server, tmp_path):
    server = tool_server(lambda prompt: REASONED)
    t = Terminal(tmp_path, "--url", server.url + "/v1", "--api", api)
    try:
        t.expect(f"mlxcli chat · scripted \\({re.escape(server.url + path)}\\)", PROMPT)
        t.enter("What is 2 + 2?")
        t.expect(re.escape(THOUGHT), re.escape(REASONED_ANSWER), FOOTER, PROMPT)  # reasoning first, dimmed
        t.enter("/exit")
        t.expect(pexpect.EOF)
        t.child.close()
        assert t.child.exitstatus == 0
    finally:
        t.child.close(force=True)
    assert "\x1b[2m" in t.transcript  # dim


def test_one_shot_on_a_terminal_renders_markdown(server, tmp_path):
    t = Terminal(tmp_path, "--url", server.url, "-p", "show code")
    t.expect("Here you go", pexpect.EOF)
    t.child.close()
    assert t.child.exitstatus == 0
    assert "\x1b[" in t.transcript and "```" not in t.transcript  # rendered, with colours
