"""vLLM generation (GPU only, optional extra ``refuseu[vllm]``): the model's chat template
through ``LLM.chat``, one call for all prompts (vLLM batches internally)."""

from __future__ import annotations

from refuseu.config import RespondConfig
from refuseu.engines.generators.base import GeneratorBase
from refuseu.errors import BuildError


class VLLMGenerator(GeneratorBase):
    name = "vllm"

    def __init__(self, model: str, config: RespondConfig):
        super().__init__(model, config)
        self._llm = None

    def settings(self) -> dict:
        c = self.config
        return {"engine": "vllm", "model": self.model_id, "revision": self.resolve()[1],
                "max_new_tokens": c.max_new_tokens, "temperature": c.temperature if c.do_sample else 0.0,
                "top_p": c.top_p, "seed": c.seed}

    signature = settings

    def prepare(self) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise BuildError("the vllm generator engine needs vLLM", hint="pip install 'refuseu[vllm]' on a "
                             "machine with a CUDA GPU, or use respond.engine: hf") from None
        import torch
        if not torch.cuda.is_available():
            raise BuildError("the vllm generator engine needs a CUDA GPU", hint="use respond.engine: hf")
        self.resolve()

    def generate(self, prompts: list[str], *, system: str | None) -> list[str]:
        from vllm import LLM, SamplingParams

        if self._llm is None:
            self._llm = LLM(model=str(self.resolve()[0]), seed=self.config.seed)
        c = self.config
        params = SamplingParams(max_tokens=c.max_new_tokens, temperature=c.temperature if c.do_sample else 0.0,
                                top_p=c.top_p, seed=c.seed)
        convs = [([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
                 for p in prompts]
        outs = self._llm.chat(convs, params, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outs]
