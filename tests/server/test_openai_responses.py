"""OpenAI Responses API through the official SDK and raw HTTP, against a real server and the scripted model."""

from __future__ import annotations

import httpx
import openai
import pytest

from mlxcli.engine.engine import EngineSettings, MlxEngine
from mlxcli.store import ConversationStore
from tests.support.models import Fail, Recording, scripted_model
from tests.support.server import RunningServer
from tests.support.streams import check_responses_stream, parse_sse

LONG = "one two three four five six seven eight nine ten eleven twelve"


def last_user(prompt: str) -> str:
    return prompt.rsplit("<|im_start|>user\n", 1)[-1].split("<|im_end|>")[0]


def respond(prompt: str) -> str:
    user = last_user(prompt)
    if "long" in user:
        return LONG
    if "explode-now" in user:
        raise RuntimeError("the model broke")
    if "explode" in user:
        return Fail("This answer breaks off half way through a sentence, and then")
    return f"You said: {user}"


RECORDING = Recording(respond)


@pytest.fixture(scope="module")
def store():
    return ConversationStore.memory()


@pytest.fixture(scope="module")
def server(tokenizer_dir, store):
    """One server for the module (engine start-up is the slow part); tests only add responses."""
    engine = MlxEngine([scripted_model(tokenizer_dir, RECORDING)], EngineSettings(temperature=0.0))
    with RunningServer(engine.start(), store=store) as srv:
        yield srv
    engine.stop(grace=1)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def prompts(server):
    """Every prompt the scripted model answered (the rendered chat template text)."""
    return RECORDING.prompts


def assert_in_order(text: str, parts: list[str]) -> None:
    position = 0
    for part in parts:
        found = text.find(part, position)
        assert found >= 0, f"{part!r} missing (or out of order) in:\n{text}"
        position = found + len(part)


def error_of(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text
    return body["error"]


def stream_raw(server, body: dict) -> str:
    with httpx.stream("POST", server.url + "/v1/responses", json={**body, "stream": True}, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.read().decode()


# ---- creating responses --------------------------------------------------------


def test_string_input(client):
    r = client.responses.create(model="gpt-4o", input="Hello there")
    assert r.id.startswith("resp_") and r.object == "response"
    assert r.status == "completed" and r.error is None and r.incomplete_details is None
    assert r.model == "gpt-4o"  # echoed back
    assert r.output_text == "You said: Hello there"
    [message] = r.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.status == "completed"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens == 0 and r.usage.output_tokens_details.reasoning_tokens == 0
    assert r.store is True and r.previous_response_id is None and r.completed_at >= r.created_at


def test_item_input_and_instructions(client, prompts):
    r = client.responses.create(
        model="m",
        instructions="RULES-A",
        input=[
            {"role": "developer", "content": "DEV-NOTE"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "part-one"}, {"type": "input_text", "text": "part-two"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "EARLIER", "annotations": []}]},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q": 1}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "TOOL-RESULT"},
            {"role": "user", "content": "final question"},
        ],
    )
    assert r.output_text == "You said: final question"
    assert r.instructions == "RULES-A"
    prompt = prompts[-1]
    assert prompt.startswith("<|im_start|>system\nRULES-A")
    assert_in_order(prompt, ["RULES-A", "DEV-NOTE", "part-one\npart-two", "EARLIER", "TOOL-RESULT", "final question"])
    items = list(client.responses.input_items.list(r.id, order="asc"))
    assert [i.type for i in items] == ["message", "message", "message", "function_call", "function_call_output", "message"]
    assert items[3].call_id == "call_1" and items[3].name == "lookup" and items[3].arguments == '{"q": 1}'
    assert items[4].call_id == "call_1" and items[4].output == "TOOL-RESULT"
    assert all(i.id for i in items) and len({i.id for i in items}) == 6


def test_stream_helper_final_response(client):
    with client.responses.stream(model="m", input="Stream me") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "You said: Stream me"
    assert final.status == "completed" and final.usage.output_tokens > 0
    assert client.responses.retrieve(final.id).output_text == final.output_text  # stored while streaming


def test_three_turn_conversation_model_sees_earlier_turns(client, prompts, store):
    r1 = client.responses.create(model="m", input="first: the sky is green", instructions="INSTR-ONE")
    with client.responses.stream(model="m", input="second: what colour?", previous_response_id=r1.id) as stream:
        r2 = stream.get_final_response()
    r3 = client.responses.create(
        model="m", input="third: summarize", previous_response_id=r2.id, instructions="INSTR-THREE"
    )
    assert r3.output_text == "You said: third: summarize" and r3.previous_response_id == r2.id
    prompt = prompts[-1]
    assert_in_order(
        prompt,
        ["INSTR-THREE", "first: the sky is green", r1.output_text, "second: what colour?", r2.output_text, "third: summarize"],
    )
    assert "INSTR-ONE" not in prompt  # instructions are not carried over
    conversation = store.conversation(r3.id)
    assert [t.id for t in conversation.turns] == [r1.id, r2.id, r3.id]


def test_retrieve_and_delete(client, server):
    r = client.responses.create(model="m", input="keep me")
    assert client.responses.retrieve(r.id).model_dump() == r.model_dump()
    with pytest.raises(openai.BadRequestError) as info:  # never a JSON body an SSE reader would see as nothing
        list(client.responses.retrieve(r.id, stream=True))
    assert info.value.body["param"] == "stream"
    deleted = httpx.delete(f"{server.url}/v1/responses/{r.id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": r.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_sdk_delete(client):
    r = client.responses.create(model="m", input="short-lived")
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_input_items_pagination(client, server):
    r = client.responses.create(model="m", input=[{"role": "user", "content": f"item {i}"} for i in range(5)])
    newest_first = [i.content[0].text for i in client.responses.input_items.list(r.id, limit=2)]  # pages of 2
    assert newest_first == [f"item {i}" for i in (4, 3, 2, 1, 0)]
    oldest_first = [i.content[0].text for i in client.responses.input_items.list(r.id, limit=2, order="asc")]
    assert oldest_first == [f"item {i}" for i in range(5)]

    page = client.responses.input_items.list(r.id, limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    ids = [i.id for i in client.responses.input_items.list(r.id, order="asc")]
    raw = httpx.get(f"{server.url}/v1/responses/{r.id}/input_items", params={"limit": 2, "order": "asc", "after": ids[1]})
    body = raw.json()
    assert body["object"] == "list" and [i["id"] for i in body["data"]] == ids[2:4]
    assert body["first_id"] == ids[2] and body["last_id"] == ids[3] and body["has_more"] is True
    last = httpx.get(f"{server.url}/v1/responses/{r.id}/input_items", params={"order": "asc", "after": ids[4]}).json()
    assert last == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_input_items_of_string_input(client):
    r = client.responses.create(model="m", input="just text")
    [item] = list(client.responses.input_items.list(r.id))
    assert item.type == "message" and item.role == "user" and item.id
    assert item.content[0].type == "input_text" and item.content[0].text == "just text"


def test_store_false_is_not_kept(client):
    r = client.responses.create(model="m", input="secret", store=False)
    assert r.store is False and r.output_text == "You said: secret"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="m", input="more", previous_response_id=r.id)
    assert err.value.body["code"] == "previous_response_not_found"
    assert err.value.body["param"] == "previous_response_id"


def test_unknown_previous_response_id(server):
    r = httpx.post(server.url + "/v1/responses", json={"input": "x", "previous_response_id": "resp_nope"})
    err = error_of(r, 400)
    assert err["type"] == "invalid_request_error" and err["code"] == "previous_response_not_found"
    assert err["param"] == "previous_response_id" and "resp_nope" in err["message"]


@pytest.mark.parametrize("method, path", [("GET", ""), ("DELETE", ""), ("GET", "/input_items")])
def test_unknown_response_ids_are_404(server, method, path):
    err = error_of(httpx.request(method, f"{server.url}/v1/responses/resp_missing{path}"), 404)
    assert err["type"] == "invalid_request_error" and "resp_missing" in err["message"]


def test_max_output_tokens_gives_incomplete(client, server):
    r = client.responses.create(model="m", input="long", max_output_tokens=3)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 3 and r.max_output_tokens == 3
    assert r.output_text and LONG.startswith(r.output_text)
    assert [item.status for item in r.output] == ["incomplete"]  # the message was cut off too
    assert client.responses.retrieve(r.id).status == "incomplete"

    final = check_responses_stream(stream_raw(server, {"input": "long", "max_output_tokens": 4}))
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [item["status"] for item in final["output"]] == ["incomplete"]
    assert final["usage"]["output_tokens"] == 4


def test_stream_grammar_for_text(server):
    raw = stream_raw(server, {"input": "grammar check", "model": "m"})
    final = check_responses_stream(raw)
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "You said: grammar check"
    assert "[DONE]" not in raw


@pytest.mark.parametrize("trigger", ["explode", "explode-now"])
def test_stream_failure_ends_with_response_failed(server, client, trigger):
    final = check_responses_stream(stream_raw(server, {"input": trigger}))
    assert final["status"] == "failed" and final["error"]["code"] == "server_error"
    assert "generation failed" in final["error"]["message"]
    assert all(item["status"] == "incomplete" for item in final["output"])
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(final["id"])  # a failed response is not stored


def test_failure_without_streaming_is_a_500(server):
    err = error_of(httpx.post(server.url + "/v1/responses", json={"input": "explode-now"}), 500)
    assert err["type"] == "server_error"


def test_unknown_fields_are_ignored(client):
    r = client.responses.create(
        model="m",
        input="tolerant",
        truncation="auto",
        include=["reasoning.encrypted_content"],
        service_tier="auto",
        extra_body={"some_future_field": {"x": 1}, "prompt_cache_key": "k"},
    )
    assert r.output_text == "You said: tolerant"


def test_tools_and_sampling_are_accepted_and_echoed(client):
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    }
    r = client.responses.create(
        model="m", input="weather?", tools=[tool], tool_choice="auto", temperature=0.2, top_p=0.5,
        metadata={"user_ref": "42"}, text={"format": {"type": "text"}},
    )
    assert r.status == "completed"
    assert r.tools[0].name == "get_weather" and r.tools[0].parameters == tool["parameters"]
    assert r.tool_choice == "auto" and r.temperature == 0.2 and r.top_p == 0.5
    assert r.metadata == {"user_ref": "42"} and r.text.format.type == "text"


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "input"),
        ({"input": 5}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"input": [{"content": "x"}]}, "input[0].type"),
        ({"input": [{"role": "user"}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}, "input[0].content[0].type"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"input": [{"type": "item_reference"}]}, "input[0].id"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].id"),
        ({"input": [{"type": "computer_call"}]}, "input[0].type"),
        ({"input": "x", "temperature": 3}, "temperature"),
        ({"input": "x", "top_p": -1}, "top_p"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "instructions": 7}, "instructions"),
        ({"input": "x", "store": "yes"}, "store"),
        ({"input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"input": "x", "text": {"format": {"type": "json_schema", "name": "s"}}}, "text.format.schema"),
        ({"input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "x", "tools": [{"type": "teleport"}]}, "tools[0].type"),
        ({"input": "x", "tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name"),
        ({"input": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}}, "tool_choice"),
        ({"input": "x", "previous_response_id": 12}, "previous_response_id"),
        ({"input": "x", "top_logprobs": 21}, "top_logprobs"),
        ({"input": "x", "include": [7]}, "include[0]"),
    ],
)
def test_bad_requests_name_the_parameter(server, body, param):
    err = error_of(httpx.post(server.url + "/v1/responses", json=body), 400)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


@pytest.mark.parametrize("query, param", [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                                          ("order=sideways", "order"), ("after=msg_unknown", "after")])
def test_bad_input_items_queries(client, server, query, param):
    r = client.responses.create(model="m", input="x")
    err = error_of(httpx.get(f"{server.url}/v1/responses/{r.id}/input_items?{query}"), 400)
    assert err["param"] == param


# ---- logprobs ------------------------------------------------------------------

LOGPROBS = ["message.output_text.logprobs"]


@pytest.mark.parametrize("top", [None, 3])
def test_logprobs_cover_every_token_of_the_answer_when_included(client, top):
    r = client.responses.create(model="m", input="logprobs please", include=LOGPROBS, top_logprobs=top)
    part = r.output[0].content[0]
    assert "".join(t.token for t in part.logprobs) == part.text == "You said: logprobs please"
    assert len(part.logprobs) == r.usage.output_tokens and r.top_logprobs == top
    for t in part.logprobs:
        assert bytes(t.bytes).decode() == t.token and t.logprob <= 0
        assert len(t.top_logprobs) == (top or 0)
        if top:
            assert t.top_logprobs[0].token == t.token  # the scripted token is the likeliest
            assert [a.logprob for a in t.top_logprobs] == sorted((a.logprob for a in t.top_logprobs), reverse=True)
    plain = client.responses.create(model="m", input="logprobs please")
    assert plain.output[0].content[0].logprobs == [] and plain.top_logprobs is None


def test_streamed_logprobs_ride_on_the_deltas_of_their_text(server):
    body = {"model": "m", "input": "stream logprobs", "include": LOGPROBS, "top_logprobs": 2, "stream": True}
    with httpx.stream("POST", server.url + "/v1/responses", json=body, timeout=60) as r:
        raw = r.read().decode()
    final = check_responses_stream(raw)
    events = [e.data for e in parse_sse(raw)]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert all("".join(t["token"] for t in d["logprobs"]) == d["delta"] for d in deltas)
    (done,) = [e for e in events if e["type"] == "response.output_text.done"]
    part = final["output"][0]["content"][0]
    assert done["logprobs"] == part["logprobs"] == [t for d in deltas for t in d["logprobs"]]
    assert all(len(t["top_logprobs"]) == 2 for t in part["logprobs"])
    stored = httpx.get(f"{server.url}/v1/responses/{final['id']}").json()
    assert stored["output"][0]["content"][0]["logprobs"] == part["logprobs"]


# ---- the WebSocket transport ---------------------------------------------------


def test_a_websocket_handshake_is_refused_with_the_status_that_sends_codex_to_http(server):
    """Codex reads 426 as "no WebSocket here" and goes on over HTTP at once (any other answer: five retries)."""
    handshake = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    err = error_of(httpx.get(server.url + "/v1/responses", headers=handshake), 426)
    assert err["code"] == "websocket_not_supported" and "POST /v1/responses" in err["message"]
    plain = httpx.get(server.url + "/v1/responses")
    assert plain.status_code == 405 and plain.headers["allow"] == "POST, OPTIONS"
