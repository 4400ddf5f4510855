"""sentence-transformers embedder: a Hub id (found in the local Hugging Face cache) or a
local folder, batched, on the GPU when one is present."""

from __future__ import annotations

import numpy as np

from refuseu.engines.models import resolve_model_dir
from refuseu.errors import BuildError

FLAG = "dedup.semantic.model"


class SentenceTransformerEmbedder:
    def __init__(self, model: str, *, revision: str | None = None, device: str = "auto", batch_size: int = 64):
        import importlib.util

        if importlib.util.find_spec("sentence_transformers") is None:
            raise BuildError("dedup.semantic needs a package that is not installed (sentence_transformers)",
                             hint="pip install 'refuseu[mt]' (sentence-transformers)")
        self.model_id = model
        self.folder, self.revision = resolve_model_dir(model, revision=revision, stage="dedup", flag=FLAG)
        self.device = device
        self.batch_size = batch_size
        self._model = None

    def settings(self) -> dict:
        # The vectors depend on the weights, not on the batch size or the device.
        return {"engine": "sentence-transformers", "model": self.model_id, "revision": self.revision}

    def _load(self):
        if self._model is None:
            try:
                import torch
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise BuildError(f"dedup.semantic needs a package that is not installed ({e.name})",
                                 hint="pip install 'refuseu[mt]' (sentence-transformers)") from None
            device = self.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            self._model = SentenceTransformer(str(self.folder), device=device, local_files_only=True)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        vecs = self._load().encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)
