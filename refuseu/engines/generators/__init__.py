"""Generator engines for compliant and helpful answers: transformers (hf) and vLLM."""

from refuseu.engines.registry import Registry

GENERATORS = Registry("respond", {
    "hf": ("refuseu.engines.generators.hf:HFGenerator", "mt"),
    "vllm": ("refuseu.engines.generators.vllm_gen:VLLMGenerator", "vllm"),
})
