"""POST /v1/audio/transcriptions and /translations through the real server, judged by the official OpenAI SDK.

One server for the module: a scripted chat model (long answers) beside two tiny random Whispers of the
real architecture whose decoder says " Hello world." from 0.00 s to 1.00 s in a window read without a
prompt (tests/support/speech_models.py): one multilingual, one English-only. The audio is espeak-ng's
(a tone where it is missing) and its re-encodings made with PyAV. The real models' words are checked in
test_audio_real.py (slow tier).
"""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

import av  # noqa: E402, F401  (the audio extra: scripts/test installs it; a run without it fails, not skips)

from mlxcli.engine.engine import EngineSettings, MlxEngine  # noqa: E402
from mlxcli.engine.kinds import served_model  # noqa: E402
from mlxcli.server.settings import ServerSettings  # noqa: E402
from tests.support.audio_files import ENCODINGS, encode, espeak, tone  # noqa: E402
from tests.support.http import openai_error, wait_for  # noqa: E402
from tests.support.models import scripted_model  # noqa: E402
from tests.support.prometheus import scrape, value  # noqa: E402
from tests.support.server import RunningServer  # noqa: E402
from tests.support.speech_models import SCRIPT, make_tiny_whisper_dir  # noqa: E402

MAX_AUDIO_SECONDS = 90
MAX_UPLOAD_BYTES = 4_000_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    wav = espeak("The quick brown fox jumps over the lazy dog.", root / "speech.wav")
    return {"wav": wav, **{fmt: encode(wav, fmt) for fmt in ENCODINGS}}


@pytest.fixture(scope="module")
def server(tokenizer_dir, tmp_path_factory):
    settings = EngineSettings(temperature=0.0)
    root = tmp_path_factory.mktemp("whisper")
    chat = scripted_model(tokenizer_dir, lambda prompt: "go " * 4000, context_window=16384)
    tiny = served_model("tiny-whisper", make_tiny_whisper_dir(tokenizer_dir, root / "multi"), settings)
    english = served_model("tiny-whisper.en", make_tiny_whisper_dir(tokenizer_dir, root / "en", multilingual=False), settings)
    engine = MlxEngine([chat, tiny, english], settings).start()
    server_settings = ServerSettings(max_audio_seconds=MAX_AUDIO_SECONDS, max_upload_bytes=MAX_UPLOAD_BYTES)
    with RunningServer(engine, server_settings) as running:
        yield running
    engine.stop(grace=1)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def transcribe(client, path, **fields):
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(model=fields.pop("model", "tiny-whisper"), file=f, **fields)


def test_json_is_the_text_and_the_seconds_of_audio(client, files):
    r = transcribe(client, files["wav"])
    assert r.text == SCRIPT.strip()
    assert r.usage.type == "duration" and r.usage.seconds >= 2


def test_text_srt_and_vtt_are_plain_text(client, files):
    assert transcribe(client, files["wav"], response_format="text").strip() == SCRIPT.strip()
    srt = transcribe(client, files["wav"], response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,") and srt.splitlines()[2] == SCRIPT.strip()
    vtt = transcribe(client, files["wav"], response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.") and vtt.splitlines()[3] == SCRIPT.strip()


def test_verbose_json_segments_and_words_are_ordered_and_inside_the_clip(client, files):
    r = transcribe(client, files["wav"], response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert r.language == "english" and r.text == SCRIPT.strip()
    assert 2.0 < r.duration < 4.0
    assert [s.id for s in r.segments] == list(range(len(r.segments))) and r.segments[0].text.strip() == SCRIPT.strip()
    for s in r.segments:
        assert 0 <= s.start <= s.end <= r.duration and s.tokens and s.temperature == 0.0 and s.no_speech_prob < 0.6
    assert [w.word for w in r.words] == SCRIPT.split()
    assert all(0 <= a.start <= a.end <= b.start <= b.end <= r.duration for a, b in zip(r.words, r.words[1:]))
    only_segments = transcribe(client, files["wav"], response_format="verbose_json")
    assert only_segments.segments and only_segments.words is None


@pytest.mark.parametrize("fmt", list(ENCODINGS))
def test_every_format_the_api_takes_is_decoded(client, files, fmt):
    r = transcribe(client, files[fmt], response_format="verbose_json")
    assert r.text == SCRIPT.strip() and abs(r.duration - transcribe_duration(client, files["wav"])) < 0.1


def transcribe_duration(client, path) -> float:
    return transcribe(client, path, response_format="verbose_json").duration


def test_a_stream_is_deltas_then_the_whole_text(client, files):
    with open(files["wav"], "rb") as f:
        events = list(client.audio.transcriptions.create(model="tiny-whisper", file=f, stream=True))
    assert [e.type for e in events] == ["transcript.text.delta"] * (len(events) - 1) + ["transcript.text.done"]
    assert len(events) >= 2 and "".join(e.delta for e in events[:-1]) == events[-1].text == SCRIPT.strip()


def test_logprobs_come_with_each_token(client, files):
    r = transcribe(client, files["wav"], include=["logprobs"])
    assert "".join(lp.token for lp in r.logprobs) == SCRIPT
    assert all(lp.logprob <= 0 and bytes(int(b) for b in lp.bytes).decode() == lp.token for lp in r.logprobs)


def test_translation_and_its_verbose_task(client, files):
    with open(files["wav"], "rb") as f:
        r = client.audio.translations.create(model="tiny-whisper", file=f, response_format="verbose_json")
    assert r.text == SCRIPT.strip() and r.language == "english" and r.segments


def test_azure_deployments_take_audio(server, files):
    client = openai.AzureOpenAI(azure_endpoint=server.url, api_key="unused", api_version="2024-10-21", max_retries=0)
    with open(files["wav"], "rb") as f:
        assert client.audio.transcriptions.create(model="tiny-whisper", file=f).text == SCRIPT.strip()


def test_long_audio_is_read_in_windows(client, tmp_path):
    r = transcribe(client, tone(tmp_path / "long.wav", 65), response_format="verbose_json")
    assert 64 < r.duration < 66 and r.text.startswith(SCRIPT.strip())
    assert all(a.end <= b.start for a, b in zip(r.segments, r.segments[1:]))


def post(server, fields: dict, file: bytes | None = b"", path: str = "/v1/audio/transcriptions", filename="a.wav"):
    files = {"file": (filename, file, "application/octet-stream")} if file is not None else None
    return httpx.post(server.url + path, data=fields, files=files or {"x": ("", b"")}, timeout=120)


@pytest.mark.parametrize(
    "fields, file, param",
    [
        ({"model": "tiny-whisper"}, None, "file"),
        ({"model": "tiny-whisper"}, b"this is plain text, not audio at all", "file"),
        ({"model": "tiny-whisper", "response_format": "docx"}, "wav", "response_format"),
        ({"model": "tiny-whisper", "temperature": "warm"}, "wav", "temperature"),
        ({"model": "tiny-whisper", "temperature": "1.5"}, "wav", "temperature"),
        ({"model": "tiny-whisper", "timestamp_granularities[]": "word"}, "wav", "timestamp_granularities"),
        ({"model": "tiny-whisper", "timestamp_granularities[]": "sentence", "response_format": "verbose_json"}, "wav", "timestamp_granularities"),
        ({"model": "tiny-whisper", "include[]": "logprobs", "response_format": "text"}, "wav", "include"),
        ({"model": "tiny-whisper", "language": "xx"}, "wav", "language"),
        ({"model": "tiny-whisper.en", "language": "de"}, "wav", "language"),
        ({"model": "tiny-whisper", "stream": "maybe"}, "wav", "stream"),
        ({"model": "tiny-whisper", "stream": "true", "response_format": "srt"}, "wav", "stream"),
        ({"model": "tiny-whisper", "chunking_strategy": '{"type":"server_vad"}'}, "wav", "chunking_strategy"),
        ({"model": "scripted"}, "wav", "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(server, files, fields, file, param):
    body = files["wav"].read_bytes() if file == "wav" else file
    assert openai_error(post(server, fields, body), 400)["param"] == param


def test_an_image_is_not_an_accepted_format(server):
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
                        "c0f01f0005000201a5f0a3c60000000049454e44ae426082")
    r = post(server, {"model": "tiny-whisper"}, png, filename="a.png")
    error = openai_error(r, 400)
    assert error["param"] == "file" and error["code"] == "invalid_file_format" and "Supported formats: flac" in error["message"]


@pytest.mark.parametrize("playlist", ["ffconcat version 1.0\nfile {wav}\n", "#EXTM3U\n#EXTINF:3,\nfile://{wav}\n#EXT-X-ENDLIST\n"])
def test_an_upload_cannot_make_the_server_read_its_own_files(server, files, playlist):
    """FFmpeg's concat and playlist demuxers would open the files (or URLs) they name: never tried."""
    r = post(server, {"model": "tiny-whisper"}, playlist.format(wav=files["wav"]).encode(), filename="list.m3u8")
    assert openai_error(r, 400)["param"] == "file"


def test_audio_over_the_length_limit_is_refused(server, tmp_path):
    r = post(server, {"model": "tiny-whisper"}, tone(tmp_path / "long.wav", MAX_AUDIO_SECONDS + 1, rate=8000).read_bytes())
    assert openai_error(r, 400)["param"] == "file" and "--max-audio-seconds" in r.text


def test_an_upload_over_the_limit_is_refused_whole(server):
    r = post(server, {"model": "tiny-whisper"}, b"\0" * (MAX_UPLOAD_BYTES + 10))
    error = openai_error(r, 413)  # as OpenAI answers, and this server's other body limits
    assert error["param"] == "file" and "limit" in error["message"]


def test_a_json_body_is_refused_with_the_form_named(server):
    r = httpx.post(server.url + "/v1/audio/transcriptions", json={"model": "tiny-whisper"})
    assert "multipart/form-data" in openai_error(r, 400)["message"]


def test_listings_show_the_capability(server, client):
    models = {m.id: m for m in client.models.list().data}
    assert "tiny-whisper" in models and "tiny-whisper.en" in models
    assert models["tiny-whisper"].capabilities == ["transcription", "translation"]
    assert models["tiny-whisper.en"].capabilities == ["transcription"]
    tags = {m["name"]: m for m in httpx.get(server.url + "/api/tags").json()["models"]}
    assert tags["tiny-whisper:latest"]["capabilities"] == ["transcription", "translation"]
    ps = httpx.get(server.url + "/mlxcli/ps").json()["models"]
    assert any(m["name"] == "tiny-whisper" and m["kind"] == "transcription" for m in ps)


def test_metrics_count_audio_seconds_and_the_real_time_factor(server, client, files):
    before = scrape(server)
    transcribe(client, files["wav"])
    after = scrape(server)
    seconds = value(after, "mlxcli:audio_seconds_total", model="tiny-whisper") - value(before, "mlxcli:audio_seconds_total", model="tiny-whisper")
    assert 2.0 < seconds < 4.0
    assert value(after, "mlxcli:audio_real_time_factor_count", model="tiny-whisper") > value(
        before, "mlxcli:audio_real_time_factor_count", model="tiny-whisper")
    assert value(after, "mlxcli:requests_total", api="openai", model="tiny-whisper", outcome="transcribed") >= 1


def test_a_transcription_returns_while_chat_streams_keep_streaming(server, client, tmp_path):
    chat = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    done, tokens = [], [0] * 4

    def stream(i):
        for _chunk in chat.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "go"}],
                                                  stream=True, max_tokens=3000):
            tokens[i] += 1
        done.append(i)

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: all(tokens), timeout=120)
    r = transcribe(client, tone(tmp_path / "tone.wav", 3))
    streamed = list(tokens)
    assert r.text == SCRIPT.strip() and not done  # back before any stream ended
    wait_for(lambda: sum(tokens) > sum(streamed), timeout=60)  # and they still stream
    for t in threads:
        t.join(timeout=600)


def test_a_client_that_leaves_cancels_its_stream(server, files):
    with httpx.stream("POST", server.url + "/v1/audio/transcriptions", data={"model": "tiny-whisper", "stream": "true"},
                      files={"file": ("a.wav", files["wav"].read_bytes())}, timeout=60) as r:
        assert r.status_code == 200
    wait_for(lambda: httpx.get(server.url + "/health").json()["active_requests"] == 0, timeout=60)
