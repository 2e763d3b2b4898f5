"""Azure OpenAI routes through the official `openai.AzureOpenAI` client and raw HTTP, against a real server."""

from __future__ import annotations

import logging

import httpx
import openai
import pytest

from mlxcli.core.errors import ModelNotFound
from mlxcli.server.providers.azure import error_body as azure_body

PARIS = "The capital of France is Paris."
API_VERSION = "2024-10-21"
CHAT = [{"role": "user", "content": "Capital of France?"}]


@pytest.fixture
def server(scripted_engine, serve):
    return serve(scripted_engine(lambda prompt: PARIS))


@pytest.fixture
def azure(server):
    return openai.AzureOpenAI(azure_endpoint=server.url, api_version=API_VERSION, api_key="azure-key", max_retries=0)


def test_chat_completions(azure):
    r = azure.chat.completions.create(model="gpt-4o-deployment", messages=CHAT)
    assert r.model == "gpt-4o-deployment"  # the deployment names the model
    assert r.choices[0].message.content == PARIS and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


def test_chat_completions_streaming(azure):
    stream = azure.chat.completions.create(
        model="gpt-4o-deployment", messages=CHAT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == PARIS
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.completion_tokens > 0
    with azure.chat.completions.stream(model="gpt-4o-deployment", messages=CHAT) as helper:
        assert helper.get_final_completion().choices[0].message.content == PARIS


def test_responses_create_stream_retrieve_and_delete(azure):
    first = azure.responses.create(model="gpt-4o-deployment", input="Capital of France?")
    assert first.output_text == PARIS and first.model == "gpt-4o-deployment"
    with azure.responses.stream(model="gpt-4o-deployment", input="Again?", previous_response_id=first.id) as stream:
        second = stream.get_final_response()
    assert second.output_text == PARIS and second.previous_response_id == first.id
    assert azure.responses.retrieve(second.id).output_text == PARIS
    assert [item.type for item in azure.responses.input_items.list(second.id)] == ["message"]
    assert azure.responses.delete(first.id) is None
    with pytest.raises(openai.NotFoundError):
        azure.responses.retrieve(first.id)


def test_deployment_responses_alias_and_v1_route(server):
    body = {"input": "Capital of France?"}
    by_deployment = httpx.post(server.url + f"/openai/deployments/dep/responses?api-version={API_VERSION}", json=body)
    assert by_deployment.status_code == 200 and by_deployment.json()["model"] == "dep"
    v1 = httpx.post(server.url + "/openai/v1/responses", json={**body, "model": "dep2"})
    assert v1.status_code == 200 and v1.json()["output"][0]["content"][0]["text"] == PARIS


def test_bearer_token_auth_header_accepted(server):
    azure = openai.AzureOpenAI(
        azure_endpoint=server.url, api_version=API_VERSION, azure_ad_token_provider=lambda: "entra-token", max_retries=0
    )
    assert azure.chat.completions.create(model="dep", messages=CHAT).choices[0].message.content == PARIS


def test_deployment_in_the_path_wins_over_the_body(server):
    r = httpx.post(
        server.url + f"/openai/deployments/my-deployment/chat/completions?api-version={API_VERSION}",
        json={"model": "something-else", "messages": CHAT},
        headers={"api-key": "k"},
    )
    assert r.status_code == 200 and r.json()["model"] == "my-deployment"


def test_v1_routes_need_no_api_version(server):
    client = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="k", max_retries=0)
    r = client.chat.completions.create(model="gpt-4o", messages=CHAT)
    assert r.model == "gpt-4o" and r.choices[0].message.content == PARIS
    assert [m.id for m in client.models.list()] == ["scripted"]
    assert client.models.retrieve("scripted").id == "scripted"


def test_classic_models_route(azure, server):
    assert [m.id for m in azure.models.list()] == ["scripted"]
    assert httpx.get(server.url + "/openai/models/scripted", params={"api-version": API_VERSION}).json()["id"] == "scripted"


def azure_error_of(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    assert "Traceback" not in r.text
    return body["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/openai/deployments/dep/chat/completions",
        "/openai/deployments/dep/responses",
        "/openai/responses",
    ],
)
def test_missing_api_version_is_azures_404(server, path):
    r = httpx.post(server.url + path, json={"model": "dep", "messages": CHAT})
    assert azure_error_of(r, 404) == {"code": "404", "message": "Resource not found"}
    r = httpx.post(server.url + path + "?api-version=", json={"model": "dep", "messages": CHAT})
    assert azure_error_of(r, 404)["code"] == "404"


def test_unknown_azure_routes_are_404_in_azure_shape(server):
    q = {"api-version": API_VERSION}
    for path in ("/openai/deployments/dep/audio/speech", "/openai/deployments/dep/messages", "/openai/nope", "/openai/v1/messages"):
        assert azure_error_of(httpx.post(server.url + path, params=q, json={}), 404)["code"] == "404", path


def test_errors_use_the_azure_shape(server, azure):
    url = server.url + f"/openai/deployments/dep/chat/completions?api-version={API_VERSION}"
    err = azure_error_of(httpx.post(url, json={"messages": []}), 400)
    assert err["param"] == "messages"
    azure_error_of(httpx.get(url), 405)
    azure_error_of(httpx.post(url, content=b"{oops", headers={"content-type": "application/json"}), 400)
    with pytest.raises(openai.BadRequestError) as raised:
        azure.chat.completions.create(model="dep", messages=CHAT, temperature=5)
    assert raised.value.body["param"] == "temperature"


def test_unknown_model_is_deployment_not_found(server):
    assert azure_body(ModelNotFound("The model `x` does not exist.")) == {
        "error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}
    }
    err = azure_error_of(httpx.get(server.url + "/openai/v1/models/not-served"), 404)
    assert err["code"] == "DeploymentNotFound"
    # The same request on the OpenAI route keeps OpenAI's shape.
    assert httpx.get(server.url + "/v1/models/not-served").json()["error"]["code"] == "model_not_found"


def test_access_log_shows_the_azure_path_and_api(server, caplog):
    with caplog.at_level(logging.INFO, logger="mlxcli.access"):
        httpx.get(server.url + "/openai/v1/models")
        httpx.post(server.url + "/openai/v1/chat/completions", json={"model": "dep", "messages": CHAT})
    lines = [r.getMessage() for r in caplog.records]
    assert any("GET /openai/v1/models 200" in line for line in lines)
    assert any("POST /openai/v1/chat/completions 200 api=azure tokens=" in line for line in lines), lines
