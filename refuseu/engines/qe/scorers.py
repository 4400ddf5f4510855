"""Quality scorers behind one small protocol.

``CometScorer``: unbabel-comet, reference-free QE (source, translation) or round-trip with a
reference-based model (the translation as source, its back-translation as hypothesis, the
English original as reference). ``ChrfRoundTrip``: sacrebleu sentence chrF between the
English original and the back-translation, scaled to 0-1.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from refuseu.config import QeConfig
from refuseu.errors import BuildError, ModelUnavailableError
from refuseu.executors import EngineCall
from refuseu.provenance import portable


def _import_comet():
    """``comet``, without the pkg_resources deprecation warning its torchmetrics prints on import."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import comet
    return comet


#: The way out when no COMET model can be had: the cheap checks alone.
NO_MODEL = "or score without a model: `--qe none` (build) / `--scorer none` (score) keeps the cheap checks only"


class ChrfRoundTrip:
    name = "chrf-roundtrip"
    needs_back_translation = True
    runs_local = True  # no model: a cluster would only add overhead

    def __init__(self, config: QeConfig):
        self.config = config

    @property
    def method(self) -> str:
        return "chrf-roundtrip"

    def settings(self) -> dict:
        import sacrebleu
        return {"scorer": "chrf-roundtrip", "sacrebleu": sacrebleu.__version__, "char_order": 6, "word_order": 0}

    def prepare(self) -> None:
        try:
            import sacrebleu  # noqa: F401
        except ImportError:
            raise BuildError("chrf-roundtrip needs sacrebleu", hint="pip install 'refuseu[qe]'") from None

    def score(self, sources: list[str], translations: list[str], backs: list[str | None]) -> list[float]:
        from sacrebleu.metrics import CHRF

        chrf = CHRF()
        return [chrf.sentence_score(b or "", [s]).score / 100.0 for s, b in zip(sources, backs)]


def resolve_comet_checkpoint(model: str) -> Path:
    """A COMET checkpoint file for a Hub id, a model folder or a .ckpt path, without
    downloading (comet.download_model offline raises a misleading KeyError)."""
    p = Path(model).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        ckpt = p / "checkpoints" / "model.ckpt"
        if ckpt.exists():
            return ckpt
        raise ModelUnavailableError(f"COMET model folder '{model}' (stage qe) has no checkpoints/model.ckpt",
                                    hint="give the folder of a downloaded COMET model or the .ckpt file, " + NO_MODEL)
    if model.count("/") == 1 and not model.startswith((".", "~")):
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model, local_files_only=True))
        except Exception:
            raise ModelUnavailableError(
                f"COMET model '{model}' (stage qe) is not available locally",
                hint="run `refuseu models pull` (needs network; gated models such as wmt22-cometkiwi-da also "
                     "need an accepted licence and HF_TOKEN), give a local checkpoint with --qe-model / "
                     "qe.model, " + NO_MODEL) from None
        ckpt = folder / "checkpoints" / "model.ckpt"
        if ckpt.exists():
            return ckpt
        raise ModelUnavailableError(f"COMET model '{model}' in the cache has no checkpoints/model.ckpt",
                                    hint="download it again with `refuseu models pull`, " + NO_MODEL)
    raise ModelUnavailableError(f"COMET model '{model}' (stage qe) not found",
                                hint="give a Hub id, a model folder or a .ckpt path with --qe-model / qe.model, " + NO_MODEL)


class CometScorer:
    name = "comet"

    def __init__(self, config: QeConfig):
        self.config = config
        self.model_id = config.default_model()
        self.needs_back_translation = config.mode == "roundtrip"
        self._model = None
        self._ckpt: Path | None = None

    @property
    def method(self) -> str:
        return f"comet-{self.config.mode}:{portable(self.model_id)}"

    def settings(self) -> dict:
        ckpt = self.prepare()
        return {"scorer": "comet", "mode": self.config.mode, "model": self.model_id,
                "checkpoint_bytes": ckpt.stat().st_size, "checkpoint_dir": ckpt.parent.parent.name}

    def prepare(self) -> Path:
        if self._ckpt is None:
            try:
                _import_comet()
            except ImportError:
                raise BuildError("the comet scorer needs unbabel-comet", hint="pip install 'refuseu[qe]', " + NO_MODEL) from None
            self._ckpt = resolve_comet_checkpoint(self.model_id)
        return self._ckpt

    def load(self):
        """Load once per build (COMET's own logging is kept quiet, not other loggers)."""
        if self._model is None:
            comet = _import_comet()
            for name in ("pytorch_lightning", "lightning.pytorch", "lightning"):
                logging.getLogger(name).setLevel(logging.ERROR)
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            try:
                self._model = comet.load_from_checkpoint(str(self.prepare()), local_files_only=offline)
            except (OSError, KeyError, ValueError) as e:
                raise ModelUnavailableError(
                    f"could not load COMET model '{self.model_id}' (stage qe): {type(e).__name__}: {e}",
                    hint="its encoder (e.g. xlm-roberta-large) must be in the Hugging Face cache too: run "
                         "`refuseu models pull`, " + NO_MODEL) from None
            self._model.eval()
        return self._model

    def _gpus(self) -> int:
        import torch

        if self.config.device == "cpu":
            return 0
        if self.config.device == "cuda" and not torch.cuda.is_available():
            raise BuildError("qe.device is cuda but no CUDA device is visible", hint="use device: auto or cpu")
        return 1 if torch.cuda.is_available() else 0

    def score(self, sources: list[str], translations: list[str], backs: list[str | None]) -> list[float]:
        model = self.load()
        if self.config.mode == "qe":
            data = [{"src": s, "mt": t} for s, t in zip(sources, translations)]
        else:
            data = [{"src": t, "mt": b or "", "ref": s} for s, t, b in zip(sources, translations, backs)]
        gpus = self._gpus()
        out = model.predict(data, batch_size=self.config.batch_size, gpus=gpus,
                            accelerator="gpu" if gpus else "cpu", progress_bar=False, num_workers=0)
        return [float(x) for x in out.scores]


SCORERS = {"comet": CometScorer, "chrf-roundtrip": ChrfRoundTrip}


def _score(scorer, triples: list) -> list[float]:
    """Scores of (source, translation, back-translation) triples: one executor chunk."""
    return scorer.score([t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples])


def _load_scorer(scorer) -> None:
    if hasattr(scorer, "load"):
        scorer.load()


#: What an executor runs on each chunk of items to score (see refuseu.executors).
SCORE = EngineCall(run=_score, load=_load_scorer)


def make_scorer(config: QeConfig):
    if config.scorer == "none":
        return None
    return SCORERS[config.scorer](config)
