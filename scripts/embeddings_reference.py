"""mlxcli's embeddings against sentence-transformers (PyTorch), an implementation no one here wrote.

Run by scripts/check_embeddings in two venvs, so that torch never enters mlxcli's:

    .venv/bin/python scripts/embeddings_reference.py mlxcli WORK        # mlxcli's vectors → WORK/mlxcli.json
    REF/bin/python   scripts/embeddings_reference.py reference WORK     # sentence-transformers' → compare

Models: all-MiniLM-L6-v2 (the `minilm` alias), and tiny random models this script writes to WORK,
for the code paths MiniLM does not take: an XLM-RoBERTa encoder (positions after the padding index,
CLS pooling), an MPNet encoder (relative position bias, MPNet's weight names) and a Qwen3 decoder
(last-token pooling, weights saved as sentence-transformers saves a base model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The new movie is awesome.",
    "The stock market fell sharply today.",
    "A woman is slicing an onion in the kitchen.",
    "Paris is the capital of France.",
    "Wie spät ist es?",
    "Quantum computers use qubits, which can be in superposition.",
    "I'd like two coffees and a croissant, please!",
    "short",
    "The quick brown fox jumps over the lazy dog; the dog doesn't mind at all, and sleeps on.",
    "def embed(texts): return model.encode(texts, normalize_embeddings=True)",
]
MIN_COSINE = 0.999


def mlxcli_side(work: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mlxcli.engine import platform

    platform.configure(True)
    from mlxcli.core.embeddings import EmbeddingRequest
    from mlxcli.engine.engine import EngineSettings, MlxEngine
    from mlxcli.engine.registry import served_model
    from mlxcli.models import pull
    from tests.support.embedding_models import make_tiny_bert_dir, make_tiny_decoder_dir, write_sentence_transformers

    minilm = pull("minilm").path
    smollm2 = pull("smollm2-135m").path  # its byte-level BPE tokenizer, for the decoder
    roberta = make_tiny_bert_dir(minilm, work / "tiny-xlm-roberta", model_type="xlm-roberta", pooling="cls_token", max_seq_length=None)
    write_sentence_transformers(roberta, "cls_token", 32)
    mpnet = make_tiny_bert_dir(minilm, work / "tiny-mpnet", model_type="mpnet", max_seq_length=None)
    decoder = make_tiny_decoder_dir(smollm2, work / "tiny-qwen3")
    models = {"minilm": minilm, "tiny-xlm-roberta": roberta, "tiny-mpnet": mpnet, "tiny-qwen3": decoder}
    settings = EngineSettings()
    engine = MlxEngine([served_model(name, path, settings) for name, path in models.items()], settings).start()
    try:
        out = {name: {"path": str(path), "vectors": engine.embed(EmbeddingRequest(SENTENCES, model=name)).result().vectors}
               for name, path in models.items()}
    finally:
        engine.stop()
    (work / "mlxcli.json").write_text(json.dumps(out))


def reference_side(work: Path) -> int:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    ours = json.loads((work / "mlxcli.json").read_text())
    worst = 1.0
    for name, entry in ours.items():
        model = SentenceTransformer(entry["path"], device="cpu")
        if model.tokenizer.pad_token is None:  # the decoder's BPE tokenizer names no padding token
            model.tokenizer.pad_token = model.tokenizer.eos_token
        reference = model.encode(SENTENCES, convert_to_numpy=True)
        mine = np.array(entry["vectors"])
        cos = (mine * reference).sum(1) / (np.linalg.norm(mine, axis=1) * np.linalg.norm(reference, axis=1))
        worst = min(worst, float(cos.min()))
        print(f"{name:18} {len(SENTENCES)} sentences  cosine min {cos.min():.6f}  mean {cos.mean():.6f}  "
              f"max |diff| {np.abs(mine - reference).max():.2e}")
    ok = worst >= MIN_COSINE
    print(f"{'pass' if ok else 'FAIL'}: the lowest cosine is {worst:.6f} (needed: {MIN_COSINE})")
    return 0 if ok else 1


if __name__ == "__main__":
    side, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    if side == "mlxcli":
        mlxcli_side(work)
    else:
        sys.exit(reference_side(work))
