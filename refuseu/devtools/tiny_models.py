"""Tiny random-weight translation models (NLLB, M2M100, Marian, T5/MADLAD-style) built
locally: a sentencepiece model trained on the seed prompts and their translations, a model
config of the real architecture, ``save_pretrained``. They load through the same
``AutoModelForSeq2SeqLM`` / ``AutoTokenizer`` code paths as the Hub models.
"""

from __future__ import annotations

import json
from pathlib import Path

from refuseu.languages import ALL12, LANGUAGES
from refuseu.resources import data_dir, seed_prompts_path


def corpus_lines() -> list[str]:
    lines = [json.loads(x)["text"] for x in seed_prompts_path().read_text("utf-8").splitlines() if x.strip()]
    for f in sorted((data_dir() / "tm").glob("*.jsonl")):
        lines += [json.loads(x)["target"] for x in f.read_text("utf-8").splitlines() if x.strip()]
    return lines


def train_spm(out_prefix: Path, vocab_size: int, *, user_symbols: list[str] | None = None,
              control_ids: bool = True) -> Path:
    """A unigram sentencepiece model of the package's text. ``control_ids``: <unk> 0, <s> 1,
    </s> 2 and no <pad> piece (the fairseq layout NLLB and M2M100 tokenizers expect);
    otherwise only <unk> 0 and </s> 2 (Marian)."""
    import sentencepiece as spm

    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    text = out_prefix.with_suffix(".txt")
    text.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    kwargs = dict(input=str(text), model_prefix=str(out_prefix), vocab_size=vocab_size,
                  character_coverage=1.0, model_type="unigram", hard_vocab_limit=False,
                  bos_id=1 if control_ids else -1, eos_id=2, unk_id=0, pad_id=-1,
                  num_threads=2, minloglevel=2)
    if user_symbols:
        kwargs["user_defined_symbols"] = user_symbols
    spm.SentencePieceTrainer.train(**kwargs)
    return out_prefix.with_suffix(".model")


SIZES = {
    "tiny": dict(d_model=32, layers=2, heads=2, ffn=64, vocab=600),
    # the translation benchmark's NLLB-architecture model (~48M parameters with an 8k vocabulary)
    "bench": dict(d_model=512, layers=6, heads=8, ffn=2048, vocab=8000),
    # facebook/nllb-200-distilled-600M's architecture (random weights, its full vocabulary size)
    "nllb600m": dict(d_model=1024, layers=12, heads=16, ffn=4096, vocab=8000, model_vocab=256206),
}


def _dims(size: str) -> dict:
    return SIZES[size]


def nllb_config(tok, size: str, *, vocab: int | None = None):
    """An M2M100Config (the NLLB and M2M100 architecture) of ``size`` for tokenizer ``tok``."""
    from transformers import M2M100Config

    d = _dims(size)
    vocab = vocab or max(d.get("model_vocab", 0), len(tok), max(tok.get_vocab().values()) + 1)
    cfg = M2M100Config(vocab_size=vocab, d_model=d["d_model"], encoder_layers=d["layers"], decoder_layers=d["layers"],
                       encoder_attention_heads=d["heads"], decoder_attention_heads=d["heads"],
                       encoder_ffn_dim=d["ffn"], decoder_ffn_dim=d["ffn"], max_position_embeddings=1024,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       decoder_start_token_id=tok.eos_token_id, scale_embedding=True, forced_eos_token_id=None,
                       dropout=0.1, activation_function="relu")
    cfg.architectures = ["M2M100ForConditionalGeneration"]
    return cfg


def build_nllb_tokenizer(out: str | Path, *, size: str = "tiny", languages=ALL12) -> Path:
    from transformers import NllbTokenizer

    out = Path(out)
    sp = train_spm(out / "spm" / "sp", _dims(size)["vocab"], control_ids=True)
    codes = [LANGUAGES[c].flores for c in languages]
    NllbTokenizer(vocab_file=str(sp), additional_special_tokens=codes, src_lang="eng_Latn").save_pretrained(out)
    _rmtree(out / "spm")
    # Save the fast tokenizer too (tokenizer.json): loadable by other transformers versions.
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(out).save_pretrained(out)
    return out


def build_nllb_from_tokenizer(out: str | Path, tokenizer_dir: str | Path, *, size: str = "tiny", seed: int = 0,
                              dtype=None) -> Path:
    """Random-weight NLLB-architecture model saved next to (a copy of) the tokenizer."""
    import shutil

    import torch
    from transformers import AutoTokenizer, M2M100ForConditionalGeneration

    out = Path(out)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(nllb_config(tok, size)).eval()
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(out)
    if Path(tokenizer_dir) != out:
        for f in Path(tokenizer_dir).iterdir():
            if f.is_file():
                shutil.copy(f, out / f.name)
    return out


def build_nllb(out: str | Path, *, size: str = "tiny", languages=ALL12, seed: int = 0) -> Path:
    out = Path(out)
    build_nllb_tokenizer(out, size=size, languages=languages)
    return build_nllb_from_tokenizer(out, out, size=size, seed=seed)


def build_m2m100(out: str | Path, *, languages=ALL12, seed: int = 0) -> Path:
    import torch
    from transformers import M2M100ForConditionalGeneration, M2M100Tokenizer

    out = Path(out)
    d = _dims("tiny")
    sp = train_spm(out / "spm" / "sp", d["vocab"], control_ids=True)
    import sentencepiece as spm_
    proc = spm_.SentencePieceProcessor(model_file=str(sp))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for i in range(proc.get_piece_size()):
        vocab.setdefault(proc.id_to_piece(i), len(vocab))
    (out).mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tok = M2M100Tokenizer(vocab_file=str(out / "vocab.json"), spm_file=str(sp), src_lang="en", tgt_lang="de",
                          language_codes="m2m100")
    tok.save_pretrained(out)
    # len(tokenizer) leaves out the language tokens: size the vocabulary from the largest id.
    size = max(max(tok.get_lang_id(c) for c in languages) + 1, _reloaded_size(out))
    torch.manual_seed(seed)
    M2M100ForConditionalGeneration(nllb_config(tok, "tiny", vocab=size)).eval().save_pretrained(out)
    _rmtree(out / "spm")
    return out


def build_marian(out: str | Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    out = Path(out)
    d = _dims("tiny")
    sp = train_spm(out / "spm" / "sp", d["vocab"], control_ids=False)
    import sentencepiece as spm_
    proc = spm_.SentencePieceProcessor(model_file=str(sp))
    # As in opus-mt models: </s> 0, <unk> 1, pieces, and <pad> last (the decoder start).
    vocab = {"</s>": 0, "<unk>": 1}
    for i in range(proc.get_piece_size()):
        vocab.setdefault(proc.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "source.spm").write_bytes(sp.read_bytes())
    (out / "target.spm").write_bytes(sp.read_bytes())
    tok = MarianTokenizer(source_spm=str(out / "source.spm"), target_spm=str(out / "target.spm"),
                          vocab=str(out / "vocab.json"))
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = MarianConfig(vocab_size=max(len(vocab), _reloaded_size(out)), d_model=d["d_model"], encoder_layers=d["layers"],
                       decoder_layers=d["layers"], encoder_attention_heads=d["heads"],
                       decoder_attention_heads=d["heads"], encoder_ffn_dim=d["ffn"], decoder_ffn_dim=d["ffn"],
                       max_position_embeddings=512, pad_token_id=vocab["<pad>"], eos_token_id=0,
                       decoder_start_token_id=vocab["<pad>"], share_encoder_decoder_embeddings=True,
                       forced_eos_token_id=None)
    cfg.architectures = ["MarianMTModel"]
    model = MarianMTModel(cfg).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    _rmtree(out / "spm")
    return out


def _reloaded_size(folder: Path) -> int:
    """Vocabulary size as loaders and converters see it: the saved tokenizer, reloaded."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    return max(len(tok), max(tok.get_vocab().values()) + 1)


def _rmtree(p: Path) -> None:
    import shutil
    shutil.rmtree(p, ignore_errors=True)


def build_t5(out: str | Path, *, languages=ALL12, seed: int = 0) -> Path:
    """A MADLAD-style T5 model: the target language is a ``<2xx>`` tag at the start of the source."""
    import sentencepiece as spm_
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    out = Path(out)
    prefix = out / "spm" / "sp"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    text = prefix.with_suffix(".txt")
    text.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    spm_.SentencePieceTrainer.train(input=str(text), model_prefix=str(prefix), vocab_size=600, model_type="unigram",
                                    character_coverage=1.0, hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2,
                                    bos_id=-1, user_defined_symbols=[f"<2{c}>" for c in languages],
                                    num_threads=2, minloglevel=2)
    T5Tokenizer(vocab_file=str(prefix.with_suffix(".model")), extra_ids=0, legacy=False).save_pretrained(out)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=max(len(tok), max(tok.get_vocab().values()) + 1), d_model=32, d_ff=64, d_kv=16,
                   num_layers=2, num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5ForConditionalGeneration(cfg).eval().save_pretrained(out)
    _rmtree(out / "spm")
    return out
