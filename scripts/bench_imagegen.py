"""What one denoising step costs, and how long a chat stream pauses while an image is generated beside it.

Runs, in one engine: the chat model (default: SmolLM2-135M, pulled once) and an image model (default: the
tests' tiny random Z-Image, built once into .cache/bench-zimage: the real VAE, a shrunk transformer and text
encoder). Prints:

- one denoising step: (time of an image of STEPS steps - time of 1 step) / (STEPS - 1), at SIZE;
- the chat stream's longest gap between two tokens, alone and while an image of STEPS steps is generated,
  and what the longest unit of the image's work is (the prompt encoding with the first step, the VAE decode).

    .venv/bin/python scripts/bench_imagegen.py [--image-model DIR] [--chat-model NAME] [--size 256] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

from mlxcli.engine import platform

platform.configure(True)

from mlxcli.core.images import ImageRequest  # noqa: E402
from mlxcli.core.request import ChatRequest, Message, Sampling  # noqa: E402
from mlxcli.engine.engine import EngineSettings, MlxEngine  # noqa: E402
from mlxcli.engine.kinds import served_model  # noqa: E402
from mlxcli.models import pull  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def tiny_zimage(chat_dir: Path) -> Path:
    import sys

    target = ROOT / ".cache" / "bench-zimage" / "Z-Image-Turbo-tiny"
    if not (target / "model_index.json").is_file():
        sys.path.insert(0, str(ROOT))
        from tests.support.image_models import make_tiny_zimage_dir

        make_tiny_zimage_dir(chat_dir, target)
    return target


def image_seconds(engine: MlxEngine, size: int, steps: int) -> float:
    start = time.perf_counter()
    engine.work("image", ImageRequest("a lighthouse at dusk", size=(size, size), steps=steps, seed=1)).result()
    return time.perf_counter() - start


def chat_gaps(engine: MlxEngine, tokens: int, during=None) -> list[float]:
    """The gaps between the tokens of one streamed answer; ``during()`` runs once the answer streams."""
    stamps: list[float] = []
    request = ChatRequest([Message("user", "Tell me a long story about a lighthouse keeper.")],
                          Sampling(max_tokens=tokens, temperature=0.0, ignore_eos=True))
    worker = None
    for _event in engine.submit(request):
        stamps.append(time.perf_counter())
        if len(stamps) == 5 and during is not None:
            worker = threading.Thread(target=during)
            worker.start()
    if worker is not None:
        worker.join()
    return [b - a for a, b in zip(stamps[5:], stamps[6:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-model", type=Path)
    parser.add_argument("--chat-model", default="smollm2-135m")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=400, help="the chat answer's length (long enough to outlast the image)")
    args = parser.parse_args()

    settings = EngineSettings(temperature=0.0)
    chat = pull(args.chat_model)
    image_dir = args.image_model or tiny_zimage(chat.path)
    engine = MlxEngine([served_model("chat", chat.path, settings), served_model("image", image_dir, settings)], settings).start()
    try:
        image_seconds(engine, args.size, 1)  # loads it, compiles its kernels
        one = statistics.median(image_seconds(engine, args.size, 1) for _ in range(3))
        many = image_seconds(engine, args.size, args.steps)
        step = (many - one) / (args.steps - 1)
        print(f"image model {image_dir.name} at {args.size}x{args.size}: 1 step {one:.2f} s, {args.steps} steps {many:.2f} s"
              f" -> one denoising step {step * 1000:.1f} ms; the rest (prompt encoding, VAE decode) {one - step:.2f} s")
        alone = chat_gaps(engine, args.tokens)
        durations: list[float] = []
        beside = chat_gaps(engine, args.tokens, lambda: durations.append(image_seconds(engine, args.size, args.steps)))
        print(f"chat stream ({args.chat_model}): longest gap between tokens {max(alone) * 1000:.0f} ms alone "
              f"(median {statistics.median(alone) * 1000:.0f} ms); {max(beside) * 1000:.0f} ms while a {args.steps}-step "
              f"{args.size}x{args.size} image was generated (median {statistics.median(beside) * 1000:.0f} ms; "
              f"the image took {durations[0]:.2f} s)")
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
