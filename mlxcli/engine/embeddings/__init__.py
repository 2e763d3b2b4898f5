"""The embedding model kind: encoders of our own (bert.py) and mlx-lm decoders, pooled as their
sentence-transformers config says (model.py), embedded in batches between decode steps (work.py)."""
