"""The Python agent frameworks and SDK wrappers users point at the server, each with a tool round trip:
openai-agents (Responses and Chat Completions), litellm (OpenAI and Anthropic routes), langchain-openai
and langchain-anthropic. The scripted model calls the weather tool, then answers from its result."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.support.models import Recording
from tests.tools.replies import ANSWER, RESULT, round_trip

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch its price list at import


def get_weather(city: str) -> str:
    """Current weather for a city"""
    return RESULT if city == "Paris" else "unknown city"


@pytest.fixture
def server(tool_server):
    respond = Recording(round_trip)
    served = tool_server(respond)
    served.respond = respond
    return served


def result_reached_the_model(server) -> bool:
    return any(RESULT in p for p in server.respond.prompts)


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_openai_agents_runs_a_tool_and_answers(server, api):
    import openai
    from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    model_class = OpenAIResponsesModel if api == "responses" else OpenAIChatCompletionsModel
    agent = Agent(name="weather", instructions="Answer briefly.", tools=[function_tool(get_weather)],
                  model=model_class(model="m", openai_client=client))
    result = asyncio.run(Runner.run(agent, "Weather in Paris?"))
    assert result.final_output == ANSWER and result_reached_the_model(server)


@pytest.mark.parametrize("route", ["openai", "anthropic"])
def test_litellm_calls_a_tool_and_streams_the_answer(server, route):
    import litellm

    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    where = {"api_base": server.url + ("/v1" if route == "openai" else ""), "api_key": "unused"}
    model = "openai/m" if route == "openai" else "anthropic/claude-sonnet-4-5"
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = litellm.completion(model=model, messages=messages, tools=tools, max_tokens=200, **where)
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [first.choices[0].message.model_dump(), {"role": "tool", "tool_call_id": call.id, "content": RESULT}]
    chunks = litellm.completion(model=model, messages=messages, tools=tools, max_tokens=200, stream=True, **where)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER


@pytest.mark.parametrize("provider", ["openai-chat", "openai-responses", "anthropic"])
def test_langchain_binds_a_tool_and_answers_from_its_result(server, provider):
    from langchain_core.messages import HumanMessage, ToolMessage

    if provider == "anthropic":
        from langchain_anthropic import ChatAnthropic

        llm = ChatAnthropic(model="claude-sonnet-4-5", base_url=server.url, api_key="unused", max_retries=0)
    else:
        from langchain_openai import ChatOpenAI

        llm = ChatOpenAI(model="m", base_url=server.url + "/v1", api_key="unused", max_retries=0,
                         use_responses_api=provider == "openai-responses")
    bound = llm.bind_tools([get_weather])
    messages = [HumanMessage("Weather in Paris?")]
    first = bound.invoke(messages)
    (call,) = first.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"}
    second = bound.invoke(messages + [first, ToolMessage(RESULT, tool_call_id=call["id"])])
    assert second.text == ANSWER
