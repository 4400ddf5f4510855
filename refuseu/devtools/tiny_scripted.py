"""A tiny Llama-architecture chat model that answers every prompt with one fixed text.

Built from :func:`~refuseu.devtools.tiny_llama.build_tiny_llama`, then rewired: attention and
MLP outputs are zeroed, so the residual stream is the token embedding, and the untied output
layer maps each token of the script to the next (the generation prompt's last token to the
first, the last to end-of-sequence). Greedy decoding therefore writes the script through the
real loading, chat-template and ``generate`` code paths. Used to test the paths that depend
on what a model says (a kept refusal, a compliance that is replaced)."""

from __future__ import annotations

from pathlib import Path


def build_scripted_llama(out: str | Path, script: str, *, hidden: int = 96) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from refuseu.devtools.tiny_llama import build_tiny_llama

    out = build_tiny_llama(out, hidden=hidden, layers=1, heads=4, extra_lines=[script] * 20)
    tok = AutoTokenizer.from_pretrained(out)
    model = LlamaForCausalLM.from_pretrained(out)
    prompt = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    start = tok(prompt, add_special_tokens=False)["input_ids"][-1]
    ids = tok(script, add_special_tokens=False)["input_ids"]
    chain = [start] + ids
    if len(set(chain)) != len(chain):
        raise ValueError("the script must not repeat a token (it is followed token by token)")
    if len(chain) + 1 > hidden:
        raise ValueError(f"script too long for hidden size {hidden}")
    model.config.tie_word_embeddings = False
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = torch.zeros_like(model.model.embed_tokens.weight)
        other = hidden - 1
        emb[:, other] = 1.0
        head = torch.zeros(model.config.vocab_size, hidden)
        for k, t in enumerate(chain):
            emb[t] = 0.0
            emb[t, k] = 1.0
            nxt = chain[k + 1] if k + 1 < len(chain) else tok.eos_token_id
            head[nxt, k] = 10.0
        head[tok.eos_token_id, other] = 10.0
        model.model.embed_tokens.weight.copy_(emb)
        model.lm_head = torch.nn.Linear(hidden, model.config.vocab_size, bias=False)
        model.lm_head.weight.copy_(head)
    model.save_pretrained(out)
    return Path(out)
