"""Codex's tools over Responses: namespaces flattened, hosted tools left out, local shells as client-run calls."""

from __future__ import annotations

import json
import logging
import threading

import httpx
import pytest

from mlxcli.server.providers.openai import responses_tools
from tests.support.models import Recording
from tests.support.streams import check_responses_stream

NAMESPACE = {
    "type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents",
    "tools": [{"type": "function", "name": "spawn_agent", "description": "Start a sub-agent",
               "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}}],
}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}
SPAWN = '<tool_call>\n{"name": "multi_agent_v1__spawn_agent", "arguments": {"task": "tests"}}\n</tool_call>'
LOCAL_SHELL = '<tool_call>\n{"name": "local_shell", "arguments": {"command": ["ls", "-la"]}}\n</tool_call>'
SHELL = '<tool_call>\n{"name": "shell", "arguments": {"commands": ["ls", "pwd"], "timeout_ms": 5000}}\n</tool_call>'
DONE = "All done."


def post(server, stream: bool, **body) -> dict:
    """The response object, from the JSON body or from the stream's terminal event (grammar-checked)."""
    body = {"model": "m", "input": "Go.", **body}
    if not stream:
        r = httpx.post(server.url + "/v1/responses", json=body, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()
    with httpx.stream("POST", server.url + "/v1/responses", json={**body, "stream": True}, timeout=60) as r:
        assert r.status_code == 200
        return check_responses_stream(r.read().decode())


def calls(response: dict) -> list[dict]:
    return [i for i in response["output"] if i["type"] != "message"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_namespaced_tool_is_offered_flat_and_called_back_with_its_namespace(tool_server, stream):
    respond = Recording(lambda prompt: DONE if "<tool_response>" in prompt else SPAWN)
    server = tool_server(respond)
    first = post(server, stream, tools=[NAMESPACE])
    (call,) = calls(first)
    assert (call["type"], call["namespace"], call["name"]) == ("function_call", "multi_agent_v1", "spawn_agent")
    assert json.loads(call["arguments"]) == {"task": "tests"}
    assert '"name": "multi_agent_v1__spawn_agent"' in respond.prompts[0]

    # Codex sends the call back as it got it, with the result: the model sees its own flat name again.
    echoed = {k: v for k, v in call.items() if k in ("type", "call_id", "name", "namespace", "arguments")}
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "spawned"}
    second = post(server, stream, tools=[NAMESPACE], input=[{"role": "user", "content": "Go."}, echoed, result])
    assert second["output"][0]["content"][0]["text"] == DONE
    assert '{"name": "multi_agent_v1__spawn_agent", "arguments": {"task": "tests"}}' in respond.prompts[1]


def test_hosted_tools_are_left_out_of_the_prompt_with_one_log_line(tool_server, caplog):
    respond = Recording(lambda prompt: DONE)
    server = tool_server(respond)
    tools = [WEB_SEARCH, {"type": "image_generation"}, NAMESPACE]
    responses_tools._logged.clear()  # once per type and process: earlier tests may have logged them
    with caplog.at_level(logging.INFO, logger="mlxcli.server"):
        for _ in range(2):
            assert post(server, False, tools=tools)["status"] == "completed"
    assert "web_search" not in respond.prompts[0] and "image_generation" not in respond.prompts[0]
    assert "multi_agent_v1__spawn_agent" in respond.prompts[0]
    logged = [r.getMessage() for r in caplog.records if "hosted tool" in r.getMessage()]
    assert sum("'web_search'" in m for m in logged) == 1 and sum("'image_generation'" in m for m in logged) == 1


def test_only_hosted_tools_means_no_tools(tool_server):
    respond = Recording(lambda prompt: DONE)
    server = tool_server(respond)
    assert post(server, False, tools=[WEB_SEARCH])["output"][0]["content"][0]["text"] == DONE
    assert "<tools>" not in respond.prompts[0]


def test_an_unknown_tool_type_is_still_a_400_naming_it(tool_server):
    server = tool_server(lambda prompt: DONE)
    r = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": "x", "tools": [{"type": "teleport"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0].type"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_local_shell_is_a_client_run_call(tool_server, stream):
    respond = Recording(lambda prompt: DONE if "<tool_response>" in prompt else LOCAL_SHELL)
    server = tool_server(respond)
    first = post(server, stream, tools=[{"type": "local_shell"}])
    (call,) = calls(first)
    assert call["type"] == "local_shell_call" and call["status"] == "completed" and call["call_id"]
    assert call["action"]["type"] == "exec" and call["action"]["command"] == ["ls", "-la"]
    assert '"name": "local_shell"' in respond.prompts[0]

    echoed = {k: call[k] for k in ("type", "id", "call_id", "status", "action")}
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "README.md"}
    second = post(server, stream, tools=[{"type": "local_shell"}], input=[{"role": "user", "content": "Go."}, echoed, result])
    assert second["output"][0]["content"][0]["text"] == DONE
    assert '"command": ["ls", "-la"]' in respond.prompts[1] and "README.md" in respond.prompts[1]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_shell_is_a_client_run_call_continued_from_the_store(tool_server, stream):
    respond = Recording(lambda prompt: DONE if "<tool_response>" in prompt else SHELL)
    server = tool_server(respond)
    first = post(server, stream, tools=[{"type": "shell"}])
    (call,) = calls(first)
    assert call["type"] == "shell_call" and call["action"]["commands"] == ["ls", "pwd"]
    assert call["action"]["timeout_ms"] == 5000
    output = {"type": "shell_call_output", "call_id": call["call_id"],
              "output": [{"stdout": "a.txt", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]}
    second = post(server, stream, tools=[{"type": "shell"}], previous_response_id=first["id"], input=[output])
    assert second["output"][0]["content"][0]["text"] == DONE
    assert '"commands": ["ls", "pwd"]' in respond.prompts[1] and "a.txt" in respond.prompts[1]


def test_response_created_and_in_progress_arrive_while_the_prompt_is_still_being_read(tool_server):
    """Codex reconnects when no event arrives for a while: the first two are sent before prefill ends."""
    prefill_done = threading.Event()

    def respond(prompt: str) -> str:  # runs at the end of prefill, on the engine thread
        assert prefill_done.wait(60), "the stream's first events never came"
        return DONE

    server = tool_server(respond)
    with httpx.stream("POST", server.url + "/v1/responses", json={"model": "m", "input": "Go.", "stream": True}, timeout=60) as r:
        lines, events = r.iter_lines(), []
        for line in lines:
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
            if events == ["response.created", "response.in_progress"]:
                break
        prefill_done.set()  # only now may the prompt finish
        rest = "\n".join(lines)
    assert events == ["response.created", "response.in_progress"] and "response.completed" in rest


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_tool_choice_naming_a_namespaced_tool_forces_its_flat_name(tool_server, stream):
    forced = '<tool_call>\n{"name": "multi_agent_v1__spawn_agent", "arguments": '
    respond = Recording(lambda prompt: '{"task": "tests"}}\n</tool_call>' if prompt.endswith(forced) else DONE)
    server = tool_server(respond)
    choice = {"type": "function", "name": "spawn_agent", "namespace": "multi_agent_v1"}
    (call,) = calls(post(server, stream, tools=[NAMESPACE], tool_choice=choice))
    assert (call["namespace"], call["name"], json.loads(call["arguments"])) == ("multi_agent_v1", "spawn_agent", {"task": "tests"})
    allowed = {"type": "allowed_tools", "mode": "required", "tools": [choice]}
    post(server, stream, tools=[NAMESPACE, {"type": "function", "name": "other", "parameters": {"type": "object"}}], tool_choice=allowed)
    assert "multi_agent_v1__spawn_agent" in respond.prompts[-1] and '"name": "other"' not in respond.prompts[-1]


def test_a_tool_choice_naming_a_tool_outside_the_namespace_is_refused(tool_server):
    server = tool_server(lambda prompt: DONE)
    choice = {"type": "function", "name": "spawn_agent", "namespace": "other_ns"}
    r = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": "Go.", "tools": [NAMESPACE], "tool_choice": choice})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice", r.text
    assert "other_ns__spawn_agent" in r.json()["error"]["message"]
