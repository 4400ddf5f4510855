"""Transformers causal LMs with their chat template: length-sorted, left-padded batches."""

from __future__ import annotations

from refuseu.config import RespondConfig
from refuseu.engines.generators.base import GeneratorBase
from refuseu.engines.translators.hf import token_batches
from refuseu.errors import BuildError, ModelUnavailableError


def prepare_chat_tokenizer(tok, *, what: str, hint: str) -> None:
    """A chat model's tokenizer for batched generation: it must have a chat template; left
    padding, with end-of-sequence as padding when it has no pad token."""
    if not getattr(tok, "chat_template", None):
        raise BuildError(f"{what} has no chat template", hint=hint)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token


class HFGenerator(GeneratorBase):
    name = "hf"

    def __init__(self, model: str, config: RespondConfig):
        super().__init__(model, config)
        self._loaded = None

    def settings(self) -> dict:
        c = self.config
        return {"engine": "hf", "model": self.model_id, "revision": self.resolve()[1],
                "max_new_tokens": c.max_new_tokens, "do_sample": c.do_sample,
                "temperature": c.temperature if c.do_sample else None, "top_p": c.top_p if c.do_sample else None,
                "seed": c.seed}

    signature = settings

    def prepare(self) -> None:
        self.resolve()

    def load(self):
        if self._loaded is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            folder, _ = self.resolve()
            try:
                tok = AutoTokenizer.from_pretrained(folder)
                cuda = self.config.device == "cuda" or (self.config.device == "auto" and torch.cuda.is_available())
                dtype = torch.float32
                if cuda:
                    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                if self.config.dtype != "auto":
                    dtype = getattr(torch, self.config.dtype)
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to("cuda" if cuda else "cpu").eval()
            except (OSError, ValueError) as e:
                raise ModelUnavailableError(f"could not load generator '{self.model_id}': {e}",
                                            hint="re-download it with `refuseu models pull`") from None
            prepare_chat_tokenizer(tok, what=f"generator '{self.model_id}'", hint="use an instruction-tuned chat model")
            self._loaded = (tok, model)
        return self._loaded

    def _render(self, tok, system: str | None, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        try:
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # templates without a system role: fold it into the user turn
            merged = [{"role": "user", "content": f"{system}\n\n{prompt}" if system else prompt}]
            return tok.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[str], *, system: str | None) -> list[str]:
        import torch

        tok, model = self.load()
        texts = [self._render(tok, system, p) for p in prompts]
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        on_gpu = model.device.type == "cuda"
        budget = self.config.batch_tokens or (16384 if on_gpu else 2048)
        out: list[str | None] = [None] * len(prompts)
        c = self.config
        for batch in token_batches([len(x) for x in ids], budget=budget, max_size=256 if on_gpu else 64):
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):  # left padding: generation continues from the right edge
                input_ids[r, width - len(ids[i]):] = torch.tensor(ids[i])
                mask[r, width - len(ids[i]):] = 1
            kwargs = dict(max_new_tokens=c.max_new_tokens, do_sample=c.do_sample, pad_token_id=tok.pad_token_id)
            if c.do_sample:
                kwargs.update(temperature=c.temperature, top_p=c.top_p)
            torch.manual_seed(c.seed)
            with torch.inference_mode():
                gen = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                                     **kwargs)
            for r, i in enumerate(batch):
                out[i] = tok.decode(gen[r, width:], skip_special_tokens=True).strip()
        return out  # type: ignore[return-value]
