"""Transformers seq2seq translation: NLLB-200, M2M100, Marian opus-mt (one model per
language pair) and MADLAD/T5-style models (target tag ``<2xx>`` in the source).

Inputs are tokenized once, long ones split into sentences, sorted by length and cut
into token-budget batches (padded tokens, not a fixed number of sentences); outputs
are restored to input order.

One model on one device: several GPUs on a node are used through the executor
(``--executor ray`` starts one actor per GPU, each with its own engine), which covers
every model stage, not only translation, and keeps each process's Python overhead off
the others' GPUs.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from refuseu.config import TranslateConfig
from refuseu.engines.models import resolve_model_dir
from refuseu.errors import BuildError, ModelUnavailableError
from refuseu.languages import LANGUAGES

DEFAULT_MODEL = "facebook/nllb-200-distilled-600M"
_SENTENCE_END = re.compile(r"(?<=[.!?…。])\s+")


@dataclass
class _Loaded:
    model_id: str
    revision: str
    family: str          # nllb | m2m100 | marian | t5
    tokenizer: object
    model: object


def model_family(config, tokenizer) -> str:
    kind = getattr(config, "model_type", "")
    tname = type(tokenizer).__name__.lower()
    if kind == "marian":
        return "marian"
    if kind in ("t5", "mt5", "umt5"):
        return "t5"
    if kind == "m2m_100":
        return "nllb" if "nllb" in tname else "m2m100"
    raise BuildError(f"unsupported translation model type '{kind}'",
                     hint="use an NLLB, M2M100, Marian or T5/MADLAD model")


def split_sentences(text: str) -> list[str]:
    parts = [p for p in _SENTENCE_END.split(text) if p]
    return parts or [text]


def token_batches(lengths: list[int], *, budget: int, max_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size fits ``budget``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, cur, cur_max = [], [], 0
    for i in order:
        new_max = max(cur_max, lengths[i])
        if cur and (new_max * (len(cur) + 1) > budget or len(cur) >= max_size):
            batches.append(cur)
            cur, new_max = [], lengths[i]
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


class HFTranslator:
    name = "hf"

    def __init__(self, config: TranslateConfig):
        self.config = config
        self.default_model = config.model or DEFAULT_MODEL
        self._loaded: dict[str, _Loaded] = {}
        self._resolved: dict[str, tuple] = {}
        self._lock = threading.Lock()

    # models ---------------------------------------------------------------------
    def model_for(self, tgt: str, src: str = "en") -> str:
        if src == "en" and tgt in self.config.models:
            return self.config.models[tgt]
        if self.default_model == "marian":
            pair = LANGUAGES[tgt].marian if src == "en" else f"Helsinki-NLP/opus-mt-{src}-en"
            if not pair:
                raise BuildError(f"no Marian opus-mt model is known for en->{tgt}",
                                 hint="use translate.models to name one, or the NLLB default")
            return pair
        return self.default_model

    def required_models(self, languages: list[str]) -> list[str]:
        return sorted({self.model_for(lang) for lang in languages if lang != "en"})

    def resolve(self, model_id: str):
        if model_id not in self._resolved:
            self._resolved[model_id] = resolve_model_dir(model_id, revision=self.config.revision, stage="translate",
                                                         flag="--translator-model / translate.model")
        return self._resolved[model_id]

    def signature(self) -> dict:
        """Settings plus the revision of every model resolved so far (the stage resolves all
        the build's models first, in ``prepare``)."""
        return {**self.settings(), "revisions": {m: self.resolve(m)[1] for m in sorted(self._resolved)}}

    def item_key(self, src: str, tgt: str) -> dict:
        """What decides one item's output besides the settings: the pair's model and revision."""
        model = self.model_for(tgt, src)
        return {"model": model, "revision": self.resolve(model)[1]}

    def settings(self) -> dict:
        cfg = self.config
        return {"engine": "hf", "model": self.default_model, "models": dict(sorted(cfg.models.items())),
                "beam_size": cfg.beam_size, "max_length_ratio": cfg.max_length_ratio,
                "max_length_offset": cfg.max_length_offset, "max_new_tokens": cfg.max_new_tokens,
                "min_new_tokens": cfg.min_new_tokens, "do_sample": cfg.do_sample,
                "temperature": cfg.temperature if cfg.do_sample else None,
                "top_p": cfg.top_p if cfg.do_sample else None, "seed": cfg.seed if cfg.do_sample else None,
                "max_source_tokens": cfg.max_source_tokens}

    def prepare(self, languages: list[str]) -> None:
        """Resolve every model the languages need (no weights loaded): fails before any work."""
        for m in self.required_models(languages):
            self.resolve(m)

    def covers(self, lang: str) -> bool:
        return lang in LANGUAGES

    def _device(self) -> str:
        import torch

        want = self.config.device
        if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
            if not torch.cuda.is_available():
                raise BuildError("translate.device is cuda but no CUDA device is visible",
                                 hint="use device: auto or cpu")
            return "cuda"  # the current device: the one GPU Ray gives an actor, else the first
        return "cpu"

    def _dtype(self, device: str):
        import torch

        d = self.config.dtype
        if d == "auto":
            if device.startswith("cuda"):
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.float32
        return getattr(torch, d)

    def load(self, model_id: str) -> _Loaded:
        with self._lock:
            if model_id in self._loaded:
                return self._loaded[model_id]
            import torch
            from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

            folder, revision = self.resolve(model_id)
            try:
                tok = AutoTokenizer.from_pretrained(folder)
                config = AutoConfig.from_pretrained(folder)
                device = self._device()
                model = AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=self._dtype(device)).to(device).eval()
            except (OSError, ValueError) as e:
                raise ModelUnavailableError(f"could not load translation model '{model_id}' from {folder}: {e}",
                                            hint="re-download it with `refuseu models pull`") from None
            if model.device.type == "cpu":
                import os
                torch.set_num_threads(max(1, os.cpu_count() or 1))
            loaded = _Loaded(model_id, revision, model_family(config, tok), tok, model)
            if len(self._loaded) >= 2 and self.default_model == "marian":  # one model per pair: keep memory flat
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[model_id] = loaded
            return loaded

    # translation ------------------------------------------------------------------
    def target_token_id(self, loaded: _Loaded, tgt: str) -> int | None:
        tok = loaded.tokenizer
        if loaded.family == "nllb":
            code = LANGUAGES[tgt].flores
            tid = tok.convert_tokens_to_ids(code)
            if tid is None or tid == tok.unk_token_id:
                raise BuildError(f"model '{loaded.model_id}' does not know the language code {code} ({tgt})")
            return tid
        if loaded.family == "m2m100":
            try:
                return tok.get_lang_id(tgt)
            except KeyError:
                raise BuildError(f"model '{loaded.model_id}' does not support language '{tgt}'") from None
        return None

    def _set_source(self, loaded: _Loaded, src: str) -> None:
        if loaded.family == "nllb":
            loaded.tokenizer.src_lang = LANGUAGES[src].flores
        elif loaded.family == "m2m100":
            loaded.tokenizer.src_lang = src

    def translate(self, texts: list[str], *, src: str, tgt: str) -> list[str | None]:
        if not texts:
            return []
        loaded = self.load(self.model_for(tgt, src))
        self._set_source(loaded, src)
        prefix = f"<2{tgt}> " if loaded.family == "t5" else ""
        tok = loaded.tokenizer
        # Split long inputs into sentences so nothing is cut by the model's length limit.
        segments: list[str] = []
        owner: list[int] = []
        lengths = [len(ids) for ids in tok([prefix + t for t in texts], add_special_tokens=True)["input_ids"]]
        for i, (t, n) in enumerate(zip(texts, lengths)):
            parts = split_sentences(t) if n > self.config.max_source_tokens else [t]
            segments += parts
            owner += [i] * len(parts)
        seg_ids = tok([prefix + s for s in segments], add_special_tokens=True, truncation=True,
                      max_length=max(self.config.max_source_tokens, 16) * 4)["input_ids"]
        seg_out = self._generate(loaded, seg_ids, tgt)
        out: list[list[str]] = [[] for _ in texts]
        for i, s in zip(owner, seg_out):
            out[i].append(s)
        return [" ".join(parts).strip() for parts in out]

    def _generate(self, loaded: _Loaded, ids: list[list[int]], tgt: str) -> list[str]:
        import torch

        cfg = self.config
        tok = loaded.tokenizer
        forced = self.target_token_id(loaded, tgt)
        drop = set(tok.all_special_ids)
        if forced is not None:
            drop.add(forced)
        # Larger batches pay off on a GPU (NLLB-600M on an H200: 3,358 tokens/s at 8,192 tokens
        # per batch, 8,634 at 32,768); on a CPU 4,096 is near the best.
        model = loaded.model
        on_gpu = model.device.type == "cuda"
        budget = cfg.batch_tokens or (32768 if on_gpu else 4096)
        max_size = cfg.max_batch_size or (1024 if on_gpu else 256)
        batches = token_batches([len(x) for x in ids], budget=budget, max_size=max_size)
        results: list[str | None] = [None] * len(ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0

        def run(batch: list[int]) -> None:
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):  # right padding: the encoder attends through the mask
                input_ids[r, :len(ids[i])] = torch.tensor(ids[i])
                mask[r, :len(ids[i])] = 1
            kwargs = dict(num_beams=cfg.beam_size, do_sample=cfg.do_sample)
            extra = 1 if forced is not None else 0  # the forced target tag is not part of the text
            kwargs["max_new_tokens"] = extra + (cfg.max_new_tokens
                                                or int(cfg.max_length_ratio * width + cfg.max_length_offset))
            if cfg.min_new_tokens:
                kwargs["min_new_tokens"] = cfg.min_new_tokens + extra
            if cfg.do_sample:
                kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
                torch.manual_seed(cfg.seed)
            if forced is not None:
                kwargs["forced_bos_token_id"] = forced
            with torch.inference_mode():
                gen = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                                     **kwargs)
            for r, i in enumerate(batch):
                toks = [t for t in gen[r].tolist() if t not in drop]
                results[i] = tok.decode(toks, skip_special_tokens=True).strip()

        for b in batches:
            run(b)
        return results  # type: ignore[return-value]
