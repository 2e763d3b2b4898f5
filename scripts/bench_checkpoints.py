"""What message-boundary checkpoints cost in memory, and what they buy, for a model whose cache cannot be trimmed.

Runs one conversation of TURNS turns (a user message of about PROMPT tokens each, GEN-token answers; the client
sends each answer back, as clients do, re-rendered by the chat template) through the engine, and prints per
turn: the prompt, the cached tokens, and the prompt cache's bytes: final entries and checkpoints.

    .venv/bin/python scripts/bench_checkpoints.py MODEL_DIR [TURNS] [PROMPT] [GEN]

MODEL_DIR: an MLX model directory of a hybrid model (Qwen3.5, Qwen3-Next, LFM2, ...) whose tokenizer has a
chat template; the tests build a tiny random one (tests/support/models.py: make_tiny_hybrid_model_dir).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlxcli.engine import platform

platform.configure(True)

from mlxcli.bench.prompts import PromptSet  # noqa: E402
from mlxcli.bench.scenarios import make_request  # noqa: E402
from mlxcli.core.collect import collect  # noqa: E402
from mlxcli.core.request import Message  # noqa: E402
from mlxcli.engine.engine import EngineSettings, MlxEngine  # noqa: E402


def main() -> None:
    path = Path(sys.argv[1])
    turns, prompt_tokens, gen_tokens = (int(a) for a in (sys.argv[2:5] + ["6", "200", "64"][len(sys.argv[2:5]) :]))
    settings = EngineSettings(temperature=0.0)
    engine = MlxEngine.from_path(path.name, path, settings).start()
    try:
        prompts = PromptSet(engine.count_tokens)
        conversation: list[Message] = []
        print("turn  prompt  cached  final entries (bytes)  checkpoints (bytes)  checkpoints ÷ final")
        for k in range(turns):
            conversation += prompts.get(prompt_tokens, k)
            answer = collect(engine.submit(make_request(conversation, gen_tokens)))
            conversation.append(Message("assistant", answer.text))
            stats = engine.prompt_cache.stats()
            final = stats["bytes"] - stats["checkpoint_bytes"]
            usage = answer.finish.usage
            print(
                f"{k + 1:>4}  {usage.prompt_tokens:>6}  {usage.cached_tokens:>6}  "
                f"{stats['entries'] - stats['checkpoints']:>3} ({final / 1e6:8.2f} MB)      "
                f"{stats['checkpoints']:>3} ({stats['checkpoint_bytes'] / 1e6:8.2f} MB)   ×{stats['checkpoint_bytes'] / max(final, 1):.2f}"
            )
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
