"""Refusal judges behind one small API: ``make_judge(JudgeConfig)`` -> a judge whose
``judge(texts, langs, prompts)`` returns one :class:`Verdict` per answer.

- ``lexicon``: the per-language cues of :class:`~refuseu.judges.refusal.RefusalDetector`
  (with ``judge.model``, a classifier averaged with them). Fast, no model needed.
- ``classifier``: a sequence-classification model; the score is the probability of the
  label whose name contains "refus" (else ``LABEL_1``).
- ``llm``: a chat model judges (prompt, answer), with a rubric (``mode: rubric``) or as
  Llama Guard 3 (``mode: llama_guard``); see :mod:`refuseu.judges.llm`. An output that
  does not parse gets the lexicon's verdict (source ``fallback``), and is counted.

Model judges keep their outputs in the item cache (keyed by the judge's model settings,
the prompt, the answer and the language): a rerun judges only new items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from refuseu.config import JudgeConfig
from refuseu import executors
from refuseu.engines.cache import ItemCache, text_hash
from refuseu.errors import BuildError, ModelUnavailableError
from refuseu.judges.refusal import RefusalDetector
from refuseu.signatures import signature_of

# Bumped when what a model judge is shown or how its output is read changes.
JUDGE_CODE_VERSION = 1


@dataclass(frozen=True)
class Verdict:
    """One answer's verdict. ``score`` is how much of a refusal it is, in [0, 1] (for
    Llama Guard: 1 - P(unsafe)); ``source`` says who decided: lexicon, classifier, llm,
    llama_guard, or fallback (the model's output did not parse: the lexicon decided)."""

    is_refusal: bool
    score: float
    source: str
    categories: tuple[str, ...] = ()


def model_label(model: str) -> str:
    """A short name of a model for origins and judge names: a folder's name, a Hub id as is."""
    path = Path(model).expanduser()
    return path.name if path.is_absolute() or path.exists() else model


class LexiconJudge:
    """The refusal lexicon (plus an optional classifier averaged with it)."""

    def __init__(self, config: JudgeConfig, *, lexicons: list[str] | None = None):
        self.config = config
        self.detector = RefusalDetector(folders=lexicons, classifier=config.model)
        self.name = "lexicon"
        self.fallbacks = self.computed = self.cached = 0

    def version(self) -> str:
        return "lexicon@" + signature_of({"lexicon": self.detector.version(), "threshold": self.config.threshold,
                                          "code": JUDGE_CODE_VERSION})

    def prepare(self) -> None:
        if self.config.model:
            resolve_judge_model(self.config)

    def judge(self, texts: list[str], langs: list[str], prompts: list[str | None] | None = None,
              progress=None) -> list[Verdict]:
        out = [Verdict(flag, float(score), "lexicon")
               for flag, score in self.detector.is_refusal(texts, langs, threshold=self.config.threshold)]
        if progress is not None:
            progress.update(len(out))
        return out


def resolve_judge_model(config: JudgeConfig) -> tuple[Path, str]:
    """(folder, revision) of ``judge.model`` without downloading; fails naming the fix."""
    from refuseu.engines.models import resolve_model_dir

    model = config.model or ""
    try:
        return resolve_model_dir(model, revision=config.revision, stage="judge", flag="judge.model / --model")
    except ModelUnavailableError as e:
        local = Path(model).expanduser().exists() or model.startswith((".", "/", "~")) or model.count("/") > 1
        hint = e.hint if local else (f"run `refuseu models pull --model {model}` (needs network) to put it in the "
                                     "Hugging Face cache, or give a local folder with judge.model / --model")
        raise ModelUnavailableError(f"judge.model: {e.message}", hint=hint) from None


class ModelJudge:
    """What the classifier and LLM judges share: model resolution, the lexicon for
    fallbacks, the item cache and the counters.

    ``computed``: items the model judged in this process; ``cached``: items read from the
    item cache; ``fallbacks``: outputs that did not parse (the lexicon decided)."""

    kind = "model"

    def __init__(self, config: JudgeConfig, *, cache: ItemCache | None = None,
                 lexicons: list[str] | None = None):
        self.config = config
        self.cache = cache
        self.lexicon = RefusalDetector(folders=lexicons)
        self.name = f"{self.kind}:{model_label(config.model or '')}"
        self.fallbacks = self.computed = self.cached = 0
        self._resolved: tuple[Path, str] | None = None
        self._loaded = None

    # --- settings ----------------------------------------------------------------
    def resolve(self) -> tuple[Path, str]:
        if self._resolved is None:
            self._resolved = resolve_judge_model(self.config)
        return self._resolved

    def item_settings(self) -> dict:
        """What a cached model output depends on (not the threshold, not the lexicon)."""
        return {"engine": self.config.engine, "model": self.config.model, "revision": self.resolve()[1],
                "code": JUDGE_CODE_VERSION}

    def version(self) -> str:
        return f"{self.name}@" + signature_of({"item": self.item_settings(), "threshold": self.config.threshold,
                                               "lexicon": self.lexicon.version()})

    def prepare(self) -> None:
        self.resolve()
        self.load()

    def load(self):  # pragma: no cover - implemented by each engine
        raise NotImplementedError

    def _device_dtype(self):
        import torch

        cuda = self.config.device == "cuda" or (self.config.device == "auto" and torch.cuda.is_available())
        if self.config.device == "cuda" and not torch.cuda.is_available():
            raise BuildError("judge.device is cuda but no CUDA device is available", hint="use judge.device: auto")
        dtype = torch.float32
        if cuda:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.config.dtype != "auto":
            dtype = getattr(torch, self.config.dtype)
        return ("cuda" if cuda else "cpu"), dtype

    # --- judging -----------------------------------------------------------------
    def compute(self, items: list[tuple[str | None, str, str]]) -> list[dict]:
        """Model outputs (JSON-able dicts) for (prompt, answer, lang) items."""
        raise NotImplementedError

    def verdict(self, output: dict, answer: str, lang: str) -> Verdict | None:
        """The verdict an output gives, or None when it does not parse (-> fallback)."""
        raise NotImplementedError

    def judge(self, texts: list[str], langs: list[str], prompts: list[str | None] | None = None,
              progress=None) -> list[Verdict]:
        if len(langs) != len(texts) or (prompts is not None and len(prompts) != len(texts)):
            raise ValueError("texts, langs and prompts must have the same length")
        prompts = list(prompts) if prompts is not None else [None] * len(texts)
        items = [(p, t or "", lang) for p, t, lang in zip(prompts, texts, langs)]
        outputs = self._outputs(items, progress)
        verdicts: list[Verdict] = []
        fallback_idx = []
        for i, ((_, answer, lang), out) in enumerate(zip(items, outputs)):
            v = self.verdict(out, answer, lang)
            if v is None:
                fallback_idx.append(i)
            verdicts.append(v)  # type: ignore[arg-type]
        if fallback_idx:
            lex = self.lexicon.is_refusal([items[i][1] for i in fallback_idx], [items[i][2] for i in fallback_idx],
                                          threshold=self.config.threshold)
            for i, (flag, score) in zip(fallback_idx, lex):
                verdicts[i] = Verdict(flag, float(score), "fallback")
            self.fallbacks += len(fallback_idx)
        return verdicts

    def _outputs(self, items: list[tuple[str | None, str, str]], progress) -> list[dict]:
        """Unique items only, cache first, the rest computed in committed chunks."""
        key = signature_of(self.item_settings())
        keyed = [(text_hash(json.dumps([p, a], ensure_ascii=False)), lang) for p, a, lang in items]
        unique = dict(zip(keyed, items))
        done: dict[tuple[str, str], dict] = {}
        if self.cache is not None:
            for lang in sorted({lang for _, lang in unique}):
                hashes = [h for h, lg in unique if lg == lang]
                for h, raw in self.cache.get_many(key, lang, "judge", hashes).items():
                    done[(h, lang)] = json.loads(raw)
        self.cached += len(done)
        if progress is not None and done:
            progress.update(len(done))
        todo = [k for k in unique if k not in done]
        chunk = max(self.config.batch_size * 8, 64)
        for i, outs in executors.current().map_chunks(self, [list(unique[k]) for k in todo], call=JUDGE,
                                                      chunk=chunk):
            part = todo[i:i + len(outs)]
            self.computed += len(part)
            if self.cache is not None:
                by_lang: dict[str, list[tuple[str, str]]] = {}
                for (h, lang), o in zip(part, outs):
                    by_lang.setdefault(lang, []).append((h, json.dumps(o, sort_keys=True)))
                for lang, pairs in by_lang.items():
                    self.cache.put_many(key, lang, "judge", pairs)
            done.update(zip(part, outs))
            if progress is not None:
                progress.update(len(part))
        return [done[k] for k in keyed]


def _judge(judge: ModelJudge, items: list) -> list[dict]:
    """Model outputs for (prompt, answer, lang) items: one executor chunk."""
    return judge.compute([tuple(item) for item in items])


def _load_judge(judge: ModelJudge) -> None:
    judge.load()


#: What an executor runs on each chunk of items to judge (see refuseu.executors); a judge is
#: rebuilt on a worker from its config alone (no cache, no lexicon folders: the driver
#: keeps both).
JUDGE = executors.EngineCall(run=_judge, load=_load_judge)


class ClassifierJudge(ModelJudge):
    """A sequence-classification model over the answer: P(refusal label), batched."""

    kind = "classifier"

    def load(self):
        if self._loaded is None:
            try:
                from transformers import AutoModelForSequenceClassification, AutoTokenizer
            except ImportError:
                raise BuildError("the classifier judge needs transformers and torch",
                                 hint="pip install 'refuseu[mt]'") from None
            folder, _ = self.resolve()
            device, dtype = self._device_dtype()
            try:
                tok = AutoTokenizer.from_pretrained(folder)
                model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype).to(device).eval()
            except (OSError, ValueError) as e:
                raise ModelUnavailableError(f"could not load judge.model '{self.config.model}' as a sequence "
                                            f"classifier: {str(e).splitlines()[0]}",
                                            hint="give a text-classification model (e.g. a refusal classifier)"
                                            ) from None
            self._loaded = (tok, model, refusal_label_index(model.config))
        return self._loaded

    def compute(self, items):
        import torch

        tok, model, index = self.load()
        texts = [a for _, a, _ in items]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        probs: list[float] = [0.0] * len(texts)
        max_len = min(getattr(tok, "model_max_length", 512) or 512, 512)
        for s in range(0, len(order), self.config.batch_size):
            batch = order[s:s + self.config.batch_size]
            enc = tok([texts[i] for i in batch], padding=True, truncation=True, max_length=max_len,
                      return_tensors="pt").to(model.device)
            with torch.inference_mode():
                logits = model(**enc).logits.float()
            if logits.shape[-1] == 1:
                p = torch.sigmoid(logits[:, 0])
            else:
                p = torch.softmax(logits, dim=-1)[:, index]
            for i, v in zip(batch, p.tolist()):
                probs[i] = round(float(v), 6)  # rounded: the same verdicts whatever the batch
        return [{"p": p} for p in probs]

    def verdict(self, output, answer, lang):
        p = float(output["p"])
        return Verdict(p >= self.config.threshold, p, "classifier")


def refusal_label_index(config) -> int:
    """The index of the refusal label: the one whose name contains "refus", else LABEL_1
    (or "1", "yes"), else 1 for a two-label model."""
    labels = {int(i): str(name).lower() for i, name in (getattr(config, "id2label", None) or {}).items()}
    n = getattr(config, "num_labels", len(labels)) or len(labels)
    if n == 1:
        return 0
    for want in (lambda s: "refus" in s, lambda s: s in ("label_1", "1", "yes", "true")):
        hits = [i for i, name in sorted(labels.items()) if want(name)]
        if hits:
            return hits[0]
    if n == 2:
        return 1
    raise BuildError(f"judge.model has {n} labels and none names a refusal ({', '.join(labels.values())})",
                     hint="use a classifier with a label containing 'refusal', or a two-label model whose "
                          "LABEL_1 means refusal")


def make_judge(cfg: JudgeConfig, *, cache_dir: str | Path | None = None,
               lexicons: list[str] | None = None):
    """The judge ``cfg`` describes. ``cache_dir``: where ``items.sqlite`` keeps model
    verdicts (none: no cache). ``lexicons``: extra folders of ``<lang>.yaml`` lexicons."""
    if cfg.engine == "lexicon":
        return LexiconJudge(cfg, lexicons=lexicons)
    cache = ItemCache(Path(cache_dir) / "items.sqlite") if cache_dir is not None else None
    if cfg.engine == "classifier":
        return ClassifierJudge(cfg, cache=cache, lexicons=lexicons)
    from refuseu.judges.llm import LLMJudge

    return LLMJudge(cfg, cache=cache, lexicons=lexicons)
