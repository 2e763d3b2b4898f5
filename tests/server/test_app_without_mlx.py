"""The server is built on the engine Protocol alone: it imports and serves every API without mlx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
sys.modules["mlx"] = sys.modules["mlx.core"] = sys.modules["mlx_lm"] = None  # any import of them fails
import falcon.testing
from mlxcli.core.engine import Engine, Generation
from mlxcli.server.app import create_app
from tests.support.fake_engine import EchoEngine

engine = EchoEngine()
assert isinstance(engine, Engine) and isinstance(engine.submit(__import__("mlxcli.core.request", fromlist=["x"]).ChatRequest([])), Generation)
client = falcon.testing.TestClient(create_app(engine), headers={"Host": "localhost"})
hi = [{"role": "user", "content": "hello there"}]
out = {
    "chat": client.simulate_post("/v1/chat/completions", json={"model": "echo", "messages": hi}).json,
    "chat_stream": client.simulate_post("/v1/chat/completions", json={"messages": hi, "stream": True}).text,
    "responses": client.simulate_post("/v1/responses", json={"input": "hello there"}).json,
    "messages": client.simulate_post("/v1/messages", json={"model": "echo", "max_tokens": 8, "messages": hi}).json,
    "azure": client.simulate_post("/openai/deployments/echo/chat/completions", params={"api-version": "2024-10-21"}, json={"messages": hi}).json,
    "unknown_model": client.simulate_post("/v1/messages", json={"model": "nope", "max_tokens": 8, "messages": hi}).json,
    "ollama": client.simulate_post("/api/chat", json={"model": "echo", "messages": hi, "stream": False}).json,
    "embeddings": client.simulate_post("/v1/embeddings", json={"model": "echo", "input": ["hi", "there"], "encoding_format": "base64"}).json,
    "models": client.simulate_get("/v1/models").json,
    "health": client.simulate_get("/health").json,
    "mlx_loaded": [m for m in sys.modules if m.split(".")[0] in ("mlx", "mlx_lm") and sys.modules[m] is not None],
    "engine_loaded": [m for m in sys.modules if m.startswith("mlxcli.engine")],
}
print(json.dumps(out))
"""


def test_the_app_serves_every_api_around_a_fake_engine_with_mlx_unimportable():
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["mlx_loaded"] == [] and out["engine_loaded"] == []
    assert out["chat"]["choices"][0]["message"]["content"] == "echo: hello there"
    assert '"content":"echo: hello there"' in out["chat_stream"] and out["chat_stream"].endswith("data: [DONE]\n\n")
    assert out["responses"]["output"][0]["content"][0]["text"] == "echo: hello there"
    assert out["messages"]["content"] == [{"type": "text", "text": "echo: hello there"}]
    assert out["azure"]["choices"][0]["message"]["content"] == "echo: hello there"
    assert out["unknown_model"]["error"]["type"] == "not_found_error"  # Anthropic's shape for its own route
    assert out["ollama"]["message"] == {"role": "assistant", "content": "echo: hello there"} and out["ollama"]["done"]
    import base64
    import struct

    embedded = out["embeddings"]
    assert [struct.unpack("<2f", base64.b64decode(d["embedding"])) for d in embedded["data"]] == [(2.0, 1.0), (5.0, 1.0)]
    assert embedded["usage"] == {"prompt_tokens": 7, "total_tokens": 7} and embedded["model"] == "echo"
    assert out["models"]["data"][0]["id"] == "echo"
    assert out["health"]["status"] == "ok" and out["health"]["model"] == "echo"
