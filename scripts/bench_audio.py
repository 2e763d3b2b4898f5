"""Speech-to-text figures for the README (scripts/bench_audio runs every part, each in its own process):

    .venv/bin/python scripts/bench_audio.py prepare WORK                  # whisper-base as float32, a ~45-s clip
    .venv/bin/python scripts/bench_audio.py rtf WORK [--no-fast-path]     # mlxcli's real-time factor
    REF/bin/python   scripts/bench_audio.py reference WORK                # mlx-whisper's transcribe, same weights
    .venv/bin/python scripts/bench_audio.py itl WORK                      # 4 chat streams, with and without a transcription

The real-time factor is engine seconds per second of audio (below 1: faster than real time); each figure is
the best of ``RUNS`` after a warm-up. ``itl``: the inter-token latency p95 of 4 SmolLM2 streams alone, then
while whisper-base transcribes a clip beside them (the same server), and whether it returned first.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whisper_reference import leave, openblas  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNS = 2
PARAGRAPH = (
    "Speech recognition turns spoken words into text. A good system copes with accents, background noise and "
    "people who speak quickly. This recording was made by a speech synthesizer, reading a few sentences about the "
    "weather, the sea and a small town by the coast, where the fishing boats come in every morning before dawn. "
    "The market opens at seven, and by nine the best fish are gone. In the afternoon the wind rises, the tourists "
    "walk along the harbour wall, and the cafes fill with the smell of coffee and fresh bread."
)


def prepare(work: Path) -> None:
    import subprocess

    import numpy as np

    sys.path.insert(0, str(ROOT))
    import mlx.core as mx

    from mlxcli.audio import decode_audio
    from mlxcli.models import pull

    src, dst = pull("whisper-base").path, work / "whisper-base"
    dst.mkdir(parents=True, exist_ok=True)
    weights = mx.load(str(src / "weights.safetensors"))
    mx.save_safetensors(str(dst / "weights.safetensors"), {k: v.astype(mx.float32) if v.dtype == mx.float16 else v
                                                           for k, v in weights.items()})
    for file in ("config.json", "tokenizer.json"):
        (dst / file).write_bytes((src / file).read_bytes())
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(work / "paragraph.wav"), PARAGRAPH], check=True)
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(work / "fox.wav"),
                    "The quick brown fox jumps over the lazy dog."], check=True)
    for clip in ("paragraph", "fox"):
        np.save(work / f"{clip}.npy", decode_audio(work / f"{clip}.wav", max_seconds=600))


def best_of(transcribe, audio) -> tuple[float, str]:
    transcribe(audio[: 16000 * 5])  # warm-up: first calls compile and allocate
    times, text = [], ""
    for _ in range(RUNS):
        started = time.perf_counter()
        text = transcribe(audio)
        times.append(time.perf_counter() - started)
    return min(times), text


def rtf(work: Path, fast_path: bool) -> None:
    sys.path.insert(0, str(ROOT))
    from mlxcli.engine import platform

    platform.configure(fast_path)
    import numpy as np

    from mlxcli.core.transcription import TranscriptionRequest
    from mlxcli.engine.engine import EngineSettings, MlxEngine
    from mlxcli.engine.kinds import served_model

    settings = EngineSettings()
    engine = MlxEngine([served_model("whisper-base", work / "whisper-base", settings)], settings).start()
    audio = np.load(work / "paragraph.npy")
    try:
        seconds, text = best_of(lambda a: engine.work("transcription", TranscriptionRequest(audio=a, language="en")).result().text, audio)
    finally:
        engine.stop(grace=0)
    report(f"mlxcli ({'fast path: OpenBLAS, float32' if fast_path else 'no fast path'})", seconds, len(audio) / 16000, text)


def reference(work: Path) -> None:
    openblas()
    import mlx_whisper
    import numpy as np

    audio = np.load(work / "paragraph.npy")
    path = str(work / "whisper-base")
    seconds, text = best_of(lambda a: mlx_whisper.transcribe(a, path_or_hf_repo=path, fp16=False, language="en")["text"], audio)
    report("mlx-whisper 0.4.3 transcribe (OpenBLAS, float32)", seconds, len(audio) / 16000, text)


def report(what: str, seconds: float, duration: float, text: str) -> None:
    print(json.dumps({"what": what, "audio_seconds": round(duration, 2), "seconds": round(seconds, 2),
                      "real_time_factor": round(seconds / duration, 3), "text": text.strip()[:80]}))


def itl(work: Path) -> None:
    """4 chat streams alone, then 4 with a transcription sent once they stream: ITL p95 of each."""
    sys.path.insert(0, str(ROOT))
    from mlxcli.engine import platform

    platform.configure(True)
    import httpx
    import numpy as np

    from mlxcli.engine.engine import EngineSettings, MlxEngine
    from mlxcli.engine.kinds import prepare as prepare_model, served_model
    from mlxcli.engine.settings import ModelSpec
    from mlxcli.server.settings import ServerSettings
    from tests.support.server import RunningServer

    settings = EngineSettings(temperature=0.0)
    chat = prepare_model(ModelSpec(model="smollm2-135m"), settings)
    engine = MlxEngine([chat, served_model("whisper-base", work / "whisper-base", settings)], settings).start()
    wav = (work / "fox.wav").read_bytes()
    with RunningServer(engine, ServerSettings()) as server:
        transcribe = lambda: httpx.post(server.url + "/v1/audio/transcriptions", data={"model": "whisper-base"},  # noqa: E731
                                        files={"file": ("fox.wav", wav)}, timeout=600).json()["text"]
        transcribe()  # loads whisper-base
        alone = streams(server.url, None)
        beside = streams(server.url, transcribe)
    engine.stop(grace=0)
    p95 = lambda gaps: float(np.percentile(gaps, 95)) * 1000  # noqa: E731
    print(json.dumps({"itl_p95_ms_alone": round(p95(alone["gaps"]), 1), "itl_p95_ms_beside_transcription":
                      round(p95(beside["gaps"]), 1), "ratio": round(p95(beside["gaps"]) / p95(alone["gaps"]), 2),
                      "transcription_seconds": round(beside["transcription"], 2),
                      "returned_before_the_streams_ended": beside["first"], "text": beside["text"]}))


def streams(url: str, transcribe) -> dict:
    """4 streams of SmolLM2; with ``transcribe``: sent once every stream has its first token. The gaps
    between tokens (of every stream, while the transcription ran when there is one)."""
    import httpx

    arrivals: list[list[float]] = [[] for _ in range(4)]
    ended: list[float] = []

    def run(i: int) -> None:
        body = {"model": "smollm2-135m", "stream": True, "max_tokens": 400, "temperature": 0,
                "messages": [{"role": "user", "content": f"Write a long story about a lighthouse keeper, part {i + 1}."}]}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    arrivals[i].append(time.perf_counter())
        ended.append(time.perf_counter())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    result: dict = {"first": None, "transcription": 0.0, "text": ""}
    window = (0.0, float("inf"))
    if transcribe is not None:
        while not all(arrivals):
            time.sleep(0.01)
        started = time.perf_counter()
        result["text"] = transcribe()
        finished = time.perf_counter()
        window = (started, finished)
        result["transcription"] = finished - started
        result["first"] = not ended
    for t in threads:
        t.join()
    result["gaps"] = [b - a for times in arrivals for a, b in zip(times, times[1:]) if window[0] <= b <= window[1]]
    return result


if __name__ == "__main__":
    mode, work = sys.argv[1], Path(sys.argv[2])
    {"prepare": prepare, "reference": reference, "itl": itl}.get(mode, lambda w: rtf(w, "--no-fast-path" not in sys.argv))(work)
    leave()
