"""``/audio PATH`` in the chat: the file transcribed by a speech model, its words sent as the message.

Against a real server (``mlxcli chat --url``, in a pseudo-terminal) serving the scripted chat model
beside a tiny random Whisper that says " Hello world." (tests/support/speech_models.py); and in
process, where the speech model gets an engine of its own on first use.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import av  # noqa: E402, F401  (the audio extra: scripts/test installs it; a run without it fails, not skips)

from mlxcli.chat.backends import EngineBackend  # noqa: E402
from mlxcli.chat.session import ChatSession  # noqa: E402
from mlxcli.core.errors import MlxcliError  # noqa: E402
from mlxcli.engine.engine import EngineSettings  # noqa: E402
from mlxcli.engine.kinds import served_model  # noqa: E402
from tests.chat.conftest import respond  # noqa: E402
from tests.chat.test_repl_pty import PROMPT, Terminal  # noqa: E402
from tests.support.audio_files import tone  # noqa: E402
from tests.support.models import scripted_model  # noqa: E402
from tests.support.speech_models import make_tiny_whisper_dir  # noqa: E402


@pytest.fixture
def whisper_dir(tokenizer_dir, tmp_path) -> Path:
    return make_tiny_whisper_dir(tokenizer_dir, tmp_path / "whisper")


@pytest.mark.slow  # mlxcli chat in a pseudo-terminal
def test_audio_through_a_server_is_sent_as_the_message(tokenizer_dir, whisper_dir, run_engine, serve, tmp_path):
    settings = EngineSettings(temperature=0.0)
    engine = run_engine([scripted_model(tokenizer_dir, respond), served_model("tiny-whisper", whisper_dir, settings)], settings)
    server = serve(engine)
    clip = tone(tmp_path / "note.wav", 2)
    t = Terminal(tmp_path, "--url", server.url)
    try:
        t.expect(PROMPT)
        t.enter(f"/audio {clip}")
        t.expect("you said: Hello world.", "Reply 1: Hello world.", PROMPT)
        t.enter(f"/audio {tmp_path / 'missing.wav'}")
        t.expect("error: cannot read", PROMPT)
        t.enter("/exit")
        t.child.expect_exact("saved:")
    finally:
        t.child.close(force=True)


def test_audio_in_process_starts_its_speech_engine_on_first_use(tokenizer_dir, whisper_dir, run_engine, tmp_path):
    settings = EngineSettings(temperature=0.0)
    chat = run_engine([scripted_model(tokenizer_dir, respond)], settings)
    started = []

    def speech():
        started.append(True)
        return run_engine([served_model("tiny-whisper", whisper_dir, settings)], settings)

    backend = EngineBackend(chat, speech)
    assert not started  # nothing loaded for a chat that never uses /audio
    text = backend.transcribe(tone(tmp_path / "note.wav", 2))
    assert text == "Hello world." and len(started) == 1
    assert ChatSession(backend, None).ask(text).answer().content == "Reply 1: Hello world."
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(MlxcliError, match="not audio in an accepted format"):
        backend.transcribe(tmp_path / "notes.txt")
    assert len(started) == 1
