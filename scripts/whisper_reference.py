"""mlxcli's Whisper against mlx-whisper's own ``transcribe`` (an implementation no one here wrote), on the
same weights and the same decoded samples.

Run by scripts/check_whisper (and scripts/bench_audio) in two venvs, so that mlx-whisper (whose metadata
wants torch, which it only needs to convert checkpoints: installed here with --no-deps) never enters mlxcli's:

    .venv/bin/python scripts/whisper_reference.py prepare WORK     # models pulled, float32 copies, clips → WORK
    .venv/bin/python scripts/whisper_reference.py mlxcli WORK      # mlxcli's transcriptions → WORK/mlxcli.json
    REF/bin/python   scripts/whisper_reference.py reference WORK   # mlx-whisper's → WORK/reference.json, compared

Both sides load the system OpenBLAS before MLX (mlxcli's CPU fast path) and run the float32 weights.
The texts must be the same; segment and word times within 0.1 s of each other. A window that either side
decoded again warmer (Whisper's fallback when the text looks wrong) was sampled at random: its text is
shown, not compared.
"""

from __future__ import annotations

import ctypes
import glob
import json
import sys
import time
from pathlib import Path

CLIPS = {  # voice, words a minute, text
    "fox": ("en-us", 150, "The quick brown fox jumps over the lazy dog."),
    "weather": ("en-us", 150, "Good morning. The weather today is sunny and warm, with a light breeze from the west."),
    "french": ("fr", 140, "Bonjour, je m'appelle Marie. J'habite à Paris et j'aime beaucoup la musique."),
}
MODELS = ("whisper-tiny.en", "whisper-base")
TOLERANCE = 0.1  # seconds between the two sides' segment and word times


def leave(code: int = 0) -> None:
    """Exit now, skipping the teardown MLX sometimes aborts in once an engine thread ran (exit status 134)."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def openblas() -> None:
    for pattern in ("/usr/lib/*/openblas-pthread/libopenblas.so.0", "/usr/lib/*/libopenblas.so.0"):
        for path in sorted(glob.glob(pattern)):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            return


def cases(work: Path) -> list[tuple[str, str, str, bool]]:
    """(model, clip, task, word timestamps) of every comparison."""
    found = [(m, c, "transcribe", True) for m in MODELS for c in ("fox", "weather")]
    return found + [("whisper-base", "french", "transcribe", True), ("whisper-base", "french", "translate", False)]


def prepare(work: Path) -> None:
    """The models pulled and copied as float32 (what both sides run), the clips spoken and decoded."""
    import subprocess

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mlxcli.audio import decode_audio
    from mlxcli.models import pull

    import mlx.core as mx

    for name in MODELS:
        src, dst = pull(name).path, work / name
        dst.mkdir(parents=True, exist_ok=True)
        weights = mx.load(str(src / "weights.safetensors"))
        mx.save_safetensors(str(dst / "weights.safetensors"), {k: v.astype(mx.float32) if v.dtype == mx.float16 else v
                                                               for k, v in weights.items()})
        for file in ("config.json", "tokenizer.json"):
            (dst / file).write_bytes((src / file).read_bytes())
    for clip, (voice, speed, text) in CLIPS.items():
        wav = work / f"{clip}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
        np.save(work / f"{clip}.npy", decode_audio(wav, max_seconds=600))


def mlxcli_side(work: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mlxcli.engine import platform

    platform.configure(True)
    import numpy as np

    from mlxcli.core.transcription import TranscriptionRequest
    from mlxcli.engine.engine import EngineSettings, MlxEngine
    from mlxcli.engine.kinds import served_model

    settings = EngineSettings(max_loaded_models=2)
    engine = MlxEngine([served_model(m, work / m, settings) for m in MODELS], settings).start()
    results = {}
    try:
        for model, clip, task, words in cases(work):
            request = TranscriptionRequest(audio=np.load(work / f"{clip}.npy"), model=model, task=task, words=words)
            started = time.perf_counter()
            r = engine.work("transcription", request).result()
            results[f"{model}/{clip}/{task}"] = {
                "seconds": time.perf_counter() - started, "text": r.text, "language": r.language,
                "sampled": any(s.temperature > 0 for s in r.segments),
                "segments": [[s.start, s.end] for s in r.segments], "words": [[w.word, w.start, w.end] for w in r.words],
            }
    finally:
        engine.stop(grace=0)
    (work / "mlxcli.json").write_text(json.dumps(results, indent=1))


def reference_side(work: Path) -> int:
    openblas()
    import mlx_whisper
    import numpy as np

    ours = json.loads((work / "mlxcli.json").read_text())
    failures, compared = 0, 0
    for model, clip, task, words in cases(work):
        key = f"{model}/{clip}/{task}"
        started = time.perf_counter()
        r = mlx_whisper.transcribe(np.load(work / f"{clip}.npy"), path_or_hf_repo=str(work / model), fp16=False,
                                   word_timestamps=words, task=task, verbose=None)
        seconds = time.perf_counter() - started
        theirs = {"text": r["text"], "language": r["language"], "segments": [[s["start"], s["end"]] for s in r["segments"]
                                                                              if s["text"].strip()],
                  "words": [[w["word"], w["start"], w["end"]] for s in r["segments"] for w in s.get("words", [])]}
        mine = ours[key]
        if mine["sampled"] or any(s["temperature"] > 0 for s in r["segments"]):
            print(f"sampled  {key}: mlxcli {mine['seconds']:.1f}s, mlx-whisper {seconds:.1f}s; a window decoded again "
                  f"warmer, at random: {mine['text'].strip()!r} / {r['text'].strip()!r}")
            continue
        compared += 1
        problems = []
        if mine["text"].strip() != theirs["text"].strip():
            problems.append(f"text {mine['text']!r} != {theirs['text']!r}")
        if mine["language"] != theirs["language"]:
            problems.append(f"language {mine['language']} != {theirs['language']}")
        for what in ("segments", "words"):
            a, b = mine[what], theirs[what]
            times = lambda rows: [t for row in rows for t in row[-2:]]  # noqa: E731
            if len(a) != len(b) or any(abs(x - y) > TOLERANCE for x, y in zip(times(a), times(b))):
                problems.append(f"{what} {a} != {b}")
        status = "ok" if not problems else "MISMATCH"
        failures += bool(problems)
        print(f"{status:8} {key}: mlxcli {mine['seconds']:.1f}s, mlx-whisper {seconds:.1f}s; {mine['text'].strip()!r}")
        for problem in problems:
            print(f"         {problem}")
    print(f"{compared - failures} of {compared} compared the same as mlx-whisper's ({len(cases(work)) - compared} sampled)")
    return 1 if failures or compared < 4 else 0


if __name__ == "__main__":
    mode, work = sys.argv[1], Path(sys.argv[2])
    if mode == "prepare":
        prepare(work)
    elif mode == "mlxcli":
        mlxcli_side(work)
        leave()
    else:
        leave(reference_side(work))
