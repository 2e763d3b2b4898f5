"""Anthropic Messages through the official SDK and raw HTTP, against a real server."""

from __future__ import annotations

import threading

import anthropic
import httpx
import pytest

from mlxcli.core.request import ChatRequest, Message
from mlxcli.engine.engine import EngineSettings
from mlxcli.server.settings import ServerSettings
from tests.support.anthropic_stream import check_stream
from tests.support.http import wait_for

LONG = "one two three four five six seven eight nine ten"
PARIS = "The capital of France is Paris."


def reply(prompt: str) -> str:
    if "explode" in prompt:
        raise RuntimeError("the model broke")
    if "long" in prompt:
        return LONG
    if "count turns" in prompt:
        return f"user turns: {prompt.count('<|im_start|>user')}"
    return PARIS


@pytest.fixture
def prompts() -> list[str]:
    """Every prompt the scripted model answered, as rendered by the chat template."""
    return []


@pytest.fixture
def engine(scripted_engine, prompts):
    return scripted_engine(lambda prompt: prompts.append(prompt) or reply(prompt))


@pytest.fixture
def server(engine, serve):
    return serve(engine)


@pytest.fixture
def client(server):
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_create(client):
    r = client.messages.create(model="local-claude", max_tokens=100, messages=user("Capital of France?"))
    assert r.id.startswith("msg_") and r.type == "message" and r.role == "assistant"
    assert r.model == "local-claude"  # echoed back
    assert [b.type for b in r.content] == ["text"]
    assert r.content[0].text == PARIS
    assert r.stop_reason == "end_turn" and r.stop_sequence is None
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.cache_read_input_tokens == 0 and r.usage.cache_creation_input_tokens == 0


def test_stream_helpers(client):
    with client.messages.stream(model="m", max_tokens=100, messages=user("Capital of France?")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == PARIS
    assert final.content[0].type == "text" and final.content[0].text == PARIS
    assert final.stop_reason == "end_turn" and final.stop_sequence is None
    created = client.messages.create(model="m", max_tokens=100, messages=user("Capital of France?"))
    assert final.usage.output_tokens == created.usage.output_tokens
    # the second request reads the first one's prompt from the prompt cache
    assert final.usage.input_tokens == created.usage.input_tokens + created.usage.cache_read_input_tokens


def test_raw_stream_grammar(server):
    body = {"model": "m", "max_tokens": 100, "stream": True, "messages": user("Capital of France?")}
    with httpx.stream("POST", server.url + "/v1/messages", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        checked = check_stream(r.read())
    assert checked.names[:3] == ["message_start", "ping", "content_block_start"]
    assert checked.names[-2:] == ["message_delta", "message_stop"]
    assert checked.message["content"] == [{"type": "text", "text": PARIS}]
    assert checked.message["stop_reason"] == "end_turn"
    assert checked.message["usage"]["output_tokens"] > 0


def test_count_tokens_uses_the_chat_template(client, engine):
    messages = user("Capital of France?")
    counted = client.messages.count_tokens(model="m", messages=messages, system="Be brief.")
    rendered = engine.render(ChatRequest(messages=[Message("system", "Be brief."), Message("user", "Capital of France?")]))
    assert counted.input_tokens == len(rendered.tokens)
    assert "<|im_start|>system\nBe brief." in rendered.text  # the template, not a plain join
    created = client.messages.create(model="m", max_tokens=10, messages=messages, system="Be brief.")
    assert created.usage.input_tokens == counted.input_tokens
    longer = client.messages.count_tokens(model="m", messages=messages, system="Be brief. Answer in one sentence.")
    assert longer.input_tokens > counted.input_tokens


def test_multi_turn_conversation(client, prompts):
    first = client.messages.create(model="m", max_tokens=50, system="You count.", messages=user("count turns"))
    assert first.content[0].text == "user turns: 1"
    history = user("count turns") + [{"role": "assistant", "content": first.content}] + user("count turns again")
    second = client.messages.create(
        model="m",
        max_tokens=50,
        system=[{"type": "text", "text": "You count."}, {"type": "text", "text": "Exactly.", "cache_control": {"type": "ephemeral"}}],
        messages=history,
    )
    assert second.content[0].text == "user turns: 2"
    prompt = prompts[-1]
    assert "<|im_start|>system\nYou count.\nExactly.<|im_end|>" in prompt
    assert "<|im_start|>assistant\nuser turns: 1<|im_end|>" in prompt
    assert second.usage.input_tokens > first.usage.input_tokens


def test_stop_sequences(client, server):
    r = client.messages.create(model="m", max_tokens=100, messages=user("long"), stop_sequences=[" four", "nine"])
    assert r.content[0].text == "one two three"
    assert r.stop_reason == "stop_sequence" and r.stop_sequence == " four"
    body = {"model": "m", "max_tokens": 100, "stream": True, "messages": user("long"), "stop_sequences": [" five"]}
    checked = check_stream(httpx.post(server.url + "/v1/messages", json=body).content)
    assert checked.message["content"][0]["text"] == "one two three four"
    assert checked.message["stop_reason"] == "stop_sequence" and checked.message["stop_sequence"] == " five"


def test_max_tokens_cut_off(client):
    r = client.messages.create(model="m", max_tokens=3, messages=user("long"))
    assert r.content[0].text == "one two three"
    assert r.stop_reason == "max_tokens" and r.usage.output_tokens == 3
    with client.messages.stream(model="m", max_tokens=2, messages=user("long")) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "one two"
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 2


def test_sampling_fields_and_headers_accepted(server):
    c = anthropic.Anthropic(
        base_url=server.url,
        api_key="sk-ant-local",
        max_retries=0,
        default_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    r = c.messages.create(
        model="m",
        max_tokens=100,
        messages=user("Capital of France?"),
        metadata={"user_id": "u-1"},
        thinking={"type": "disabled"},
        # Older SDKs and Claude Code send the sampling fields; this SDK version no longer has them as arguments.
        extra_body={"temperature": 0.0, "top_p": 0.9, "top_k": 40, "some_future_field": True},
    )
    assert r.content[0].text == PARIS


def test_tool_blocks_map_to_the_neutral_conversation(client, prompts):
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "abc"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "SUNNY-21C"}]},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    r = client.messages.create(model="m", max_tokens=50, tools=tools, tool_choice={"type": "auto"}, messages=messages)
    assert r.content[0].text == PARIS
    prompt = prompts[-1]
    assert "SUNNY-21C" in prompt and "And tomorrow?" in prompt
    assert prompt.index("SUNNY-21C") < prompt.index("And tomorrow?")


def test_error_after_the_200_is_an_error_event(server, client):
    body = {"model": "m", "max_tokens": 50, "stream": True, "messages": user("explode")}
    with httpx.stream("POST", server.url + "/v1/messages", json=body) as r:
        assert r.status_code == 200
        checked = check_stream(r.read())
    assert checked.names[0] == "message_start" and checked.names[-1] == "error"
    assert checked.error["type"] == "api_error" and "Traceback" not in checked.error["message"]
    with pytest.raises(anthropic.APIStatusError) as err:
        with client.messages.stream(model="m", max_tokens=50, messages=user("explode")) as stream:
            stream.get_final_message()
    assert err.value.body["error"]["type"] == "api_error"
    # The server keeps serving.
    assert client.messages.create(model="m", max_tokens=50, messages=user("hi")).content[0].text == PARIS


# ---- errors ------------------------------------------------------------------


def error_of(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and set(body) == {"type", "error"}
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == kind
    assert "Traceback" not in r.text
    return body["error"]["message"]


OK = {"model": "m", "max_tokens": 10, "messages": user("hi")}


@pytest.mark.parametrize(
    "change, param",
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"model": None}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "messages[0].content[0].source.type"),
        ({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, "messages[0].content[0].tool_use_id"),
        ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f"}]}]}, "messages[0].content[0].input"),
        ({"system": [{"type": "image"}]}, "system[0].type"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"stop_sequences": [1]}, "stop_sequences[0]"),
        ({"tools": [{"name": "bad name!", "input_schema": {}}]}, "tools[0].name"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"tool_choice": {"type": "tool", "name": "missing"}}, "tool_choice.name"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id"),
        ({"thinking": {"type": "enabled", "budget_tokens": "lots"}}, "thinking.budget_tokens"),
    ],
)
def test_bad_requests_name_the_parameter(server, change, param):
    body = {k: v for k, v in {**OK, **change}.items() if v is not None}
    message = error_of(httpx.post(server.url + "/v1/messages", json=body), 400, "invalid_request_error")
    assert param in message


def test_sdk_raises_typed_errors(client):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="m", max_tokens=10, messages=[])
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError) as err:
        client.post("/v1/messages/nope", body={}, cast_to=object)
    assert err.value.body["error"]["type"] == "not_found_error"


def test_every_messages_failure_has_the_anthropic_shape(server):
    url = server.url + "/v1/messages"
    error_of(httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400, "invalid_request_error")
    error_of(httpx.post(url, content=b"[1]", headers={"content-type": "application/json"}), 400, "invalid_request_error")
    error_of(httpx.get(url), 405, "invalid_request_error")
    error_of(httpx.post(url + "/batches"), 404, "not_found_error")
    error_of(httpx.post(url + "/count_tokens", json={"messages": user("x")}), 400, "invalid_request_error")


def test_body_too_large(scripted_engine, serve):
    srv = serve(scripted_engine(reply), ServerSettings(port=0, max_body_bytes=1000))
    body = {**OK, "messages": user("x" * 2000)}
    error_of(httpx.post(srv.url + "/v1/messages", json=body), 413, "request_too_large")
    error_of(httpx.post(srv.url + "/v1/messages/count_tokens", json=body), 413, "request_too_large")


def test_prompt_too_long(scripted_engine, serve):
    srv = serve(scripted_engine(reply, context_window=48))
    message = error_of(httpx.post(srv.url + "/v1/messages", json={**OK, "messages": user("word " * 100)}), 400, "invalid_request_error")
    assert message.startswith("prompt is too long:")


def test_overload_is_529(scripted_engine, serve):
    release = threading.Event()

    def blocking(prompt: str) -> str:
        if "block" in prompt:
            release.wait(30)
        return "done"

    srv = serve(scripted_engine(blocking, EngineSettings(temperature=0.0, max_queue=1)))
    results: list[int] = []

    def post(body: dict) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.append(httpx.post(srv.url + "/v1/messages", json=body, timeout=60).status_code))
        thread.start()
        return thread

    def wait_for_stat(stat: str) -> None:
        assert wait_for(lambda: srv.engine.stats()[stat], timeout=30), f"{stat} never became non-zero"

    running = post({**OK, "messages": user("block")})  # holds the engine
    try:
        wait_for_stat("active_requests")
        queued = post(OK)  # fills the queue of one
        wait_for_stat("queue_depth")
        r = httpx.post(srv.url + "/v1/messages", json=OK)
        error_of(r, 529, "overloaded_error")
        assert int(r.headers["retry-after"]) >= 1
    finally:
        release.set()
    running.join(30)
    queued.join(30)
    assert results == [200, 200]


def test_claude_code_request_shape(server, prompts):
    """The shape Claude Code 2.1 sends (captured from `claude -p`, abbreviated): beta query and headers,
    system blocks with cache_control, a mid-conversation system message, adaptive thinking, fields this
    server does not use, and a max_tokens far beyond the context window."""
    body = {
        "model": "claude-opus-5-5",
        "max_tokens": 128000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1;"},
            {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>be nice</system-reminder>"}, {"type": "text", "text": "say hi"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\nPlatform: linux"}]},
        ],
        "tools": [
            {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
            {"name": "DeferredToolPlaceholder", "description": "later", "input_schema": {"type": "object"}, "defer_loading": True},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        ],
        "metadata": {"user_id": '{"device_id":"' + "ab" * 32 + '","account_uuid":"","session_id":"de5e19f9-48b1-4f67-b361-e18253957a71"}'},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
    }
    headers = {
        "x-api-key": "sk-local",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "anthropic-dangerous-direct-browser-access": "true",
    }
    with httpx.stream("POST", server.url + "/v1/messages?beta=true", json=body, headers=headers) as r:
        assert r.status_code == 200, r.read()
        checked = check_stream(r.read())
    assert checked.message["content"] == [{"type": "text", "text": PARIS}]
    prompt = prompts[-1]
    # SmolLM2's template knows no tools: they follow the system prompt in the fallback format (hosted tools left out).
    # Claude Code's billing header is not part of the prompt.
    assert "<|im_start|>system\nYou are a Claude agent.\n\n# Tools\n" in prompt and "billing" not in prompt
    assert '"name": "Bash"' in prompt and '"name": "DeferredToolPlaceholder"' in prompt and "web_search" not in prompt
    assert "<|im_start|>system\n# Environment\nPlatform: linux<|im_end|>" in prompt
    counted = httpx.post(server.url + "/v1/messages/count_tokens?beta=true", json={k: body[k] for k in ("model", "system", "messages", "tools")}, headers=headers)
    assert counted.json() == {"input_tokens": checked.message["usage"]["input_tokens"]}


def test_claude_code_turns_reuse_the_prompt_cache_though_its_billing_header_changes(client):
    """Claude Code writes a new ``cch`` hash into its first system block on every request."""
    system = "You are Claude Code. " + "Follow the rules of the repository carefully. " * 20
    history: list[dict] = [{"role": "user", "content": "Capital of France?"}]
    previous_prompt = None
    for turn, cch in enumerate(["36ee5", "0aaa9", "7b31c"]):
        blocks = [{"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.177.0{turn}c; cc_entrypoint=cli; cch={cch};"},
                  {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
        answer = client.messages.create(model="claude-sonnet-4-5", max_tokens=20, system=blocks, messages=history)
        usage = answer.usage
        if previous_prompt is not None:
            assert usage.cache_read_input_tokens >= 0.9 * previous_prompt, (turn, usage)
        previous_prompt = usage.input_tokens + usage.cache_read_input_tokens
        history += [{"role": "assistant", "content": answer.content[0].text}, {"role": "user", "content": f"And turn {turn + 2}?"}]
