"""What every generator engine shares: the model it serves and its offline resolution."""

from __future__ import annotations

from refuseu.config import RespondConfig
from refuseu.engines.models import resolve_model_dir


class GeneratorBase:
    name = "base"
    #: the setting and option that name this model, for messages (the respond stage sets it per role)
    flag = "respond.generator / --generator"

    def __init__(self, model: str, config: RespondConfig):
        self.model_id = model
        self.config = config
        self._resolved = None

    def resolve(self):
        """(local folder, revision) of the model, without downloading; fails with the fix."""
        if self._resolved is None:
            self._resolved = resolve_model_dir(self.model_id, revision=self.config.revision, stage="respond",
                                               flag=self.flag)
        return self._resolved
