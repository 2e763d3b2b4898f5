"""The speech-to-text model kind: Whisper in MLX (whisper.py), its log-mel front end (mel.py) and tokenizer,
the decoding loop (decoding.py, timing.py) and its work in the engine loop (work.py, kind.py)."""
