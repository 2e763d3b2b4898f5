"""Responses ``item_reference`` input items (the Vercel AI SDK's step after a tool call): the stored item they name."""

from __future__ import annotations

import httpx
import pytest

from tests.support.models import Recording
from tests.tools.replies import ANSWER, CALL_IN_PROMPT, QUESTION_TOOLS, RESULT, RESULT_IN_PROMPT, round_trip


def post(server, **body) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", json={"model": "m", **body}, timeout=60)


@pytest.mark.parametrize("referenced", ["message-and-call", "call-only"])
def test_references_to_a_stored_answer_put_its_items_in_the_prompt(tool_server, referenced):
    respond = Recording(round_trip)
    server = tool_server(respond)
    question = {"type": "message", "role": "user", "content": "Weather in Paris?"}
    first = post(server, input=[question], tools=QUESTION_TOOLS).json()
    message, call = first["output"]
    assert (message["type"], call["type"]) == ("message", "function_call")
    refs = [message, call] if referenced == "message-and-call" else [call]
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": RESULT}
    second = post(server, tools=QUESTION_TOOLS,
                  input=[question, *({"type": "item_reference", "id": i["id"]} for i in refs), result])
    assert second.status_code == 200, second.text
    assert second.json()["output"][0]["content"][0]["text"] == ANSWER
    prompt = respond.prompts[-1]
    assert RESULT_IN_PROMPT in prompt
    if referenced == "message-and-call":
        assert CALL_IN_PROMPT in prompt
    else:
        assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt


def test_a_reference_to_a_stored_input_item(tool_server):
    respond = Recording(lambda prompt: "ok")
    server = tool_server(respond)
    first = post(server, input=[{"type": "message", "id": "msg_mine", "role": "user", "content": "REMEMBER-ME"}])
    assert first.status_code == 200
    second = post(server, input=[{"type": "item_reference", "id": "msg_mine"}, {"role": "user", "content": "And?"}])
    assert second.status_code == 200, second.text
    assert "REMEMBER-ME" in respond.prompts[-1] and "And?" in respond.prompts[-1]


@pytest.mark.parametrize("stored", [True, False], ids=["unknown", "store-false"])
def test_an_unknown_reference_is_a_400_naming_it(tool_server, stored):
    server = tool_server(lambda prompt: "ok")
    missing = "msg_nowhere"
    if not stored:
        first = post(server, input="hi", store=False).json()
        missing = first["output"][0]["id"]  # answered, never stored
    r = post(server, input=[{"role": "user", "content": "x"}, {"type": "item_reference", "id": missing}])
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "input[1].id" and missing in error["message"]
