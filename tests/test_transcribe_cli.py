"""``mlxcli transcribe FILE``: in this process on a local speech model, and through a running server
(``--url``); text, subtitles and JSON on stdout; a clear error and a non-zero exit for a bad file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import av  # noqa: E402, F401  (the audio extra: scripts/test installs it; a run without it fails, not skips)

from mlxcli.cli import app  # noqa: E402
from mlxcli.engine.engine import EngineSettings  # noqa: E402
from mlxcli.engine.kinds import served_model  # noqa: E402
from tests.support.audio_files import tone  # noqa: E402
from tests.support.speech_models import make_tiny_whisper_dir  # noqa: E402


@pytest.fixture(scope="module")
def whisper_dir(tokenizer_dir, tmp_path_factory):
    return make_tiny_whisper_dir(tokenizer_dir, tmp_path_factory.mktemp("whisper"))


def run(*args: str, home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlxcli", "transcribe", *args], capture_output=True, text=True,
                          timeout=300, env={"MLXCLI_HOME": str(home), "PATH": "/usr/bin:/bin"})


@pytest.mark.slow  # runs mlxcli in a subprocess
def test_in_process_text_srt_and_json(whisper_dir, tmp_path):
    clip = tone(tmp_path / "clip.wav", 2)
    assert run(str(clip), "-m", str(whisper_dir), home=tmp_path).stdout == "Hello world.\n"
    srt = run(str(clip), "-m", str(whisper_dir), "--format", "srt", home=tmp_path).stdout
    assert srt.startswith("1\n00:00:00,000 --> ") and "Hello world." in srt
    body = json.loads(run(str(clip), "-m", str(whisper_dir), "-f", "json", home=tmp_path).stdout)
    assert body["text"] == "Hello world." and body["language"] == "en" and [w["word"] for w in body["segments"][0]["words"]] == [" Hello", " world."]


@pytest.mark.slow  # runs mlxcli in a subprocess
def test_a_file_that_is_not_audio_fails_clearly(whisper_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    result = run(str(notes), "-m", str(whisper_dir), home=tmp_path)
    assert result.returncode == 2 and "not audio in an accepted format" in result.stderr and "Traceback" not in result.stderr


def test_through_a_server(whisper_dir, tokenizer_dir, run_engine, serve, tmp_path):
    settings = EngineSettings()
    server = serve(run_engine([served_model("tiny-whisper", whisper_dir, settings)], settings))
    clip = tone(tmp_path / "clip.wav", 2)
    result = CliRunner().invoke(app, ["transcribe", str(clip), "--url", server.url, "-f", "vtt"])
    assert result.exit_code == 0 and result.stdout.startswith("WEBVTT") and "Hello world." in result.stdout
    result = CliRunner().invoke(app, ["transcribe", str(clip), "--url", server.url, "-f", "json"])
    assert json.loads(result.stdout)["words"][0]["word"] == "Hello"
    result = CliRunner().invoke(app, ["transcribe", str(clip), "--url", server.url, "-m", "nope/nope", "--language", "xx"])
    assert result.exit_code == 1 and "language" in result.stderr
