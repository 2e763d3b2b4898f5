"""`mlxcli convo list` and `mlxcli convo export`, from the hot store and from archives."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.core.events import Usage
from mlxcli.core.request import ToolCall
from mlxcli.store import ConversationStore, StoredMessage, StoreSettings, Turn
from mlxcli.store.records import conversation_from_json, conversation_json


@pytest.fixture
def home(tmp_path):
    """A data directory with one hot conversation (2 turns, a tool call) and one archived conversation."""
    with ConversationStore(StoreSettings.default(tmp_path)) as store:
        store.record(Turn(
            id="resp_hot1", source="responses", model="smollm2-135m", instructions="Answer briefly.",
            input=[StoredMessage(role="user", content="What's the weather in Paris?")],
            output=[StoredMessage(role="assistant", content=None, reasoning="I should look it up.",
                                  tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')])],
            usage=Usage(10, 5), created_at=1_700_000_000.0,
        ))
        store.record(Turn(
            id="resp_hot2", source="responses", model="smollm2-135m", previous_id="resp_hot1",
            input=[StoredMessage(role="tool", content="18C and sunny", tool_call_id="call_1")],
            output=[StoredMessage(role="assistant", content="It is 18C and sunny in Paris.")],
            usage=Usage(20, 9), created_at=1_700_000_060.0,
        ))
        store.record(Turn(
            id="chatcmpl-cold", source="chat.completions", model="smollm2-135m",
            input=[StoredMessage(role="user", content="Tell me a joke about ```code fences```")],
            output=[StoredMessage(role="assistant", content="Why did the fence cross the road?")],
            usage=Usage(7, 8), created_at=1_700_000_100.0,
        ))
        cold = store.get("chatcmpl-cold").conversation_id
        assert store.archive(cold)
        ids = {"hot": store.get("resp_hot1").conversation_id, "archived": cold}
        expected = {which: conversation_json(store.conversation(cid)) for which, cid in ids.items()}
    return tmp_path, ids, expected


def run(home_dir, *args):
    result = CliRunner().invoke(app, ["convo", *args], env={"MLXCLI_HOME": str(home_dir), "COLUMNS": "200"})
    return result


def test_list(home):
    home_dir, ids, _ = home
    result = run(home_dir, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    hot = next(line for line in lines if ids["hot"] in line)
    cold = next(line for line in lines if ids["archived"] in line)
    assert " hot " in hot and "What's the weather in Paris?" in hot and " 2 " in hot
    assert "archived" in cold and "Tell me a joke" in cold
    assert lines.index(cold) < lines.index(hot)  # most recently used first

    result = run(home_dir, "list", "--json")
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == [ids["archived"], ids["hot"]]  # most recently used first
    assert rows[1]["turns"] == 2 and rows[1]["archived"] is False and rows[0]["archived"] is True


def test_list_with_nothing_stored(tmp_path):
    result = run(tmp_path, "list")
    assert result.exit_code == 0 and "no stored conversations" in result.output
    assert not (tmp_path / "conversations.db").exists()  # listing creates nothing


@pytest.mark.parametrize("which", ["hot", "archived"])
def test_export_json(home, which):
    home_dir, ids, expected = home
    result = run(home_dir, "export", ids[which], "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc == expected[which]
    assert conversation_from_json(doc).id == ids[which]


def test_export_by_response_id(home):
    home_dir, ids, expected = home
    result = run(home_dir, "export", "resp_hot2")
    assert json.loads(result.stdout) == expected["hot"]


@pytest.mark.parametrize("which", ["hot", "archived"])
def test_export_jsonl(home, which):
    home_dir, ids, expected = home
    result = run(home_dir, "export", ids[which], "-f", "jsonl")
    [line] = result.output.splitlines()
    assert json.loads(line) == expected[which]


def test_export_all(home, tmp_path):
    home_dir, ids, expected = home
    lines = run(home_dir, "export", "--all", "--format", "jsonl").output.splitlines()
    assert [json.loads(line) for line in lines] == [expected["archived"], expected["hot"]]
    array = json.loads(run(home_dir, "export", "--all").stdout)
    assert array == [expected["archived"], expected["hot"]]


def test_export_markdown_hot(home):
    home_dir, ids, _ = home
    text = run(home_dir, "export", ids["hot"], "--format", "markdown").output
    assert text.startswith(f"# Conversation {ids['hot']}\n")
    assert "hot store" in text and "Turns: 2" in text
    assert "## Turn 1: resp_hot1 (2023-11-14 22:13:20 UTC)" in text
    assert "**Instructions**\n\n> Answer briefly." in text
    assert "**User**\n\nWhat's the weather in Paris?" in text
    assert "**Assistant (reasoning)**\n\n> I should look it up." in text
    assert '**Tool call** `get_weather` (`call_1`)\n\n```json\n{"city": "Paris"}\n```' in text
    assert "**Tool result** (`call_1`)\n\n```\n18C and sunny\n```" in text
    assert "**Assistant**\n\nIt is 18C and sunny in Paris." in text
    assert text.index("resp_hot1") < text.index("resp_hot2")


def test_export_markdown_archived(home):
    home_dir, ids, _ = home
    text = run(home_dir, "export", ids["archived"], "--format", "markdown").output
    assert f"# Conversation {ids['archived']}" in text and "(archived)" in text
    assert "**User**\n\nTell me a joke about ```code fences```" in text
    assert "**Assistant**\n\nWhy did the fence cross the road?" in text
    assert "7 input + 8 output tokens" in text


def test_export_to_a_file(home, tmp_path):
    home_dir, ids, expected = home
    target = tmp_path / "out" / "convo.json"
    target.parent.mkdir()
    result = run(home_dir, "export", ids["hot"], "-o", str(target))
    assert result.exit_code == 0
    assert json.loads(target.read_text()) == expected["hot"]
    assert "wrote 1 conversation" in result.output


def test_export_errors(home):
    home_dir, _, _ = home
    missing = run(home_dir, "export", "conv_nope")
    assert missing.exit_code == 1 and "no conversation or response with id 'conv_nope'" in missing.output
    assert run(home_dir, "export").exit_code == 2
    assert run(home_dir, "export", "conv_x", "--all").exit_code == 2
    assert run(home_dir, "export", "--all", "--format", "yaml").exit_code == 2


def test_duration_and_size_options():
    from mlxcli.cli.store_options import parse_duration, parse_size

    assert [parse_duration(t) for t in ("90", "90s", "30m", "1h", "1.5h", "2d", "0")] == [90, 90, 1800, 3600, 5400, 172800, 0]
    assert [parse_size(t) for t in ("1000", "64k", "500MB", "2GiB", "1.5G")] == [1000, 64_000, 500_000_000, 2 << 30, 1_500_000_000]
    result = CliRunner().invoke(app, ["serve", "--conversation-ttl", "soon"])
    assert result.exit_code == 2 and "is not a duration" in result.output


def test_serve_fails_fast_on_an_unusable_store(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["serve", "--store-path", str(blocker / "conversations.db")], env={"MLXCLI_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "cannot open the conversation store" in result.output  # before any model is loaded
