"""A tiny sentence-transformers model for tests: a static embedding bag (the mean of
per-word vectors) over a word-level vocabulary, saved like any sentence-transformers folder
and loaded with ``SentenceTransformer(folder)``.

Every word gets a seeded random vector; words of one synonym set share one vector, so two
requests that say the same thing with those words embed to the same point, while texts with
different words land far apart (random vectors of many dimensions are nearly orthogonal).
Words outside the vocabulary (and punctuation) have a zero vector.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ("how can could do i you me a an the to get into make find steal take borrow car vehicle auto "
         "house home building lock door open break without key keys anyone someone noticing seeing at "
         "night quietly please tell explain write story about elections votes ballots poem recipe cake "
         "bake bread weather tomorrow city").split()
SYNONYMS = (("steal", "take", "borrow"), ("car", "vehicle", "auto"), ("house", "home", "building"),
            ("can", "could", "do"), ("tell", "explain"), ("anyone", "someone"), ("noticing", "seeing"))


def build_tiny_embedder(out: str | Path, *, dim: int = 64, seed: int = 0) -> Path:
    """Save the tiny model to ``out`` and return the folder."""
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    try:
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    except ImportError:  # sentence-transformers < 5.4
        from sentence_transformers.models import StaticEmbedding

    out = Path(out)
    vocab = {"[UNK]": 0, "[PAD]": 1}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((len(vocab), dim)).astype(np.float32)
    weights[:2] = 0  # unknown words and punctuation say nothing about the request
    for group in SYNONYMS:
        for w in group[1:]:
            weights[vocab[w]] = weights[vocab[group[0]]]
    model = SentenceTransformer(modules=[StaticEmbedding(tok, embedding_weights=weights)], device="cpu")
    model.save(str(out))
    # Model folders are recognised by a config.json at the top, as on the Hub.
    if not (out / "config.json").exists():
        (out / "config.json").write_text(json.dumps({"model_type": "static-embedding", "dim": dim}) + "\n")
    return out
