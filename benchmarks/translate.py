"""Translation benchmark: one NLLB-architecture model with random weights, the same inputs,
the same fixed output length (32 new tokens each, so every variant does equal work):

  (a) a naive loop: one ``generate`` per sentence (the baseline, measured in this run),
  (b) the ``hf`` engine (length-sorted token-budget batches),
  (c) the ``ctranslate2`` engine, int8 (CPU only here),
  (d) the ``hf`` engine through the Ray executor with one actor (``--ray``; Ray installed):
      the same calls as (b)'s engine behind the item cache, once with the local executor
      and once on Ray, timed with actor start and model load (what the first model stage of
      a build pays).

Prints tokens/s of each and the ratios b/a, c/a and d's time against the local executor.
Targets on the 2-core CPU: b/a >= 12, c/a >= 40, Ray at most 1.3x the local time.

    python benchmarks/translate.py                      # CPU, d_model 512, 6+6 layers, 8k vocab
    python benchmarks/translate.py --size nllb600m      # NLLB-600M architecture (use on a GPU)
    python benchmarks/translate.py --naive-n 128        # time the naive loop on the first 128 inputs
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NEW_TOKENS = 32


def make_inputs(tok, n: int, seed: int = 0) -> list[str]:
    """``n`` sentences of 8-64 tokens, skewed short (log-normal), cut from the seed texts."""
    from refuseu.devtools.tiny_models import corpus_lines

    rng = random.Random(seed)
    lines = [x for x in corpus_lines() if len(x) > 40]
    out = []
    while len(out) < n:
        want = int(min(64, max(8, rng.lognormvariate(math.log(16), 0.55))))
        ids = []
        while len(ids) < want:
            ids += tok(rng.choice(lines), add_special_tokens=False)["input_ids"]
        text = tok.decode(ids[:want], skip_special_tokens=True).strip()
        if text:
            out.append(text)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="bench", choices=["bench", "nllb600m"])
    ap.add_argument("--n", type=int, default=512, help="inputs")
    ap.add_argument("--naive-n", type=int, default=None, help="inputs for the naive loop (default: all)")
    ap.add_argument("--tokenizer", default=None, help="a saved NLLB tokenizer folder (default: build one)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--no-ct2", action="store_true")
    ap.add_argument("--batch-tokens", type=int, nargs="+", default=None,
                    help="token budgets to try for the hf engine (default 4096 on CPU, 8192 and 32768 on GPU)")
    ap.add_argument("--ray", action="store_true", help="also run (d): the hf engine on a local Ray, one actor")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from refuseu.config import TranslateConfig
    from refuseu.devtools.tiny_models import build_nllb_from_tokenizer, build_nllb_tokenizer
    from refuseu.engines.translators.hf import HFTranslator

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    wd = Path(args.workdir or tempfile.mkdtemp(prefix="refuseu-mt-bench-"))
    tok_dir = Path(args.tokenizer) if args.tokenizer else build_nllb_tokenizer(wd / "tokenizer", size=args.size)
    t0 = time.perf_counter()
    model_dir = build_nllb_from_tokenizer(wd / f"model-{args.size}", tok_dir, size=args.size,
                                          dtype=torch.bfloat16 if cuda else None)
    tok = AutoTokenizer.from_pretrained(model_dir)
    inputs = make_inputs(tok, args.n)
    lens = [len(tok(t)["input_ids"]) for t in inputs]
    device = "cuda" if cuda else "cpu"
    params = sum(p.numel() for p in AutoModelForSeq2SeqLM.from_pretrained(model_dir).parameters()) / 1e6
    print(f"model: NLLB architecture '{args.size}', {params:.0f}M parameters, random weights, "
          f"{'bf16 on ' + torch.cuda.get_device_name() if cuda else 'fp32 on CPU'} "
          f"({time.perf_counter() - t0:.1f}s to build)")
    print(f"inputs: {len(inputs)} sentences, {min(lens)}-{max(lens)} tokens (median {sorted(lens)[len(lens) // 2]}), "
          f"{NEW_TOKENS} new tokens each")
    results = {}

    # (a) naive: one generate per sentence, same model, same forced target language.
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, dtype=torch.bfloat16 if cuda else torch.float32)
    model = model.to(device).eval()
    tok.src_lang = "eng_Latn"
    forced = tok.convert_tokens_to_ids("deu_Latn")
    naive = inputs[: args.naive_n or len(inputs)]
    with torch.inference_mode():
        model.generate(**tok([naive[0]], return_tensors="pt").to(device), forced_bos_token_id=forced,
                       max_new_tokens=4)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for text in naive:
            enc = tok([text], return_tensors="pt").to(device)
            model.generate(**enc, forced_bos_token_id=forced, max_new_tokens=NEW_TOKENS + 1,
                           min_new_tokens=NEW_TOKENS + 1, num_beams=1, do_sample=False)
        if cuda:
            torch.cuda.synchronize()
        results["a_naive"] = len(naive) * NEW_TOKENS / (time.perf_counter() - t0)
    del model
    print(f"(a) naive loop, one generate per sentence ({len(naive)} inputs): {results['a_naive']:>9,.0f} tokens/s")

    # (b) the hf engine, at one or more token budgets.
    budgets = args.batch_tokens or ([8192, 32768] if cuda else [4096])
    for budget in budgets:
        cfg = TranslateConfig(engine="hf", model=str(model_dir), device=device, max_new_tokens=NEW_TOKENS,
                              min_new_tokens=NEW_TOKENS, batch_tokens=budget,
                              max_batch_size=1024 if cuda else 256, max_source_tokens=256)
        eng = HFTranslator(cfg)
        eng.translate(inputs[:8], src="en", tgt="de")  # load + warm up
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out_b = eng.translate(inputs, src="en", tgt="de")
        if cuda:
            torch.cuda.synchronize()
        key = "b_hf" if budget == budgets[0] else f"b_hf_{budget}"
        results[key] = len(inputs) * NEW_TOKENS / (time.perf_counter() - t0)
        print(f"(b) hf engine (token budget {budget:>6}):               {results[key]:>9,.0f} tokens/s   "
              f"b/a = {results[key] / results['a_naive']:.1f}x (target >= 12 on the 2-core CPU)")
        del eng
        if cuda:
            torch.cuda.empty_cache()

    # (c) the ctranslate2 engine, int8.
    if not args.no_ct2 and not cuda:
        from refuseu.engines.translators.ct2 import CT2Translator

        cfg_c = cfg.model_copy(update={"engine": "ctranslate2", "ct2_quantization": "int8",
                                       "ct2_cache": str(wd / "ct2")})
        ct = CT2Translator(cfg_c)
        t0 = time.perf_counter()
        ct.convert(str(model_dir))
        conv = time.perf_counter() - t0
        ct.translate(inputs[:8], src="en", tgt="de")
        t0 = time.perf_counter()
        out_c = ct.translate(inputs, src="en", tgt="de")
        results["c_ct2_int8"] = len(inputs) * NEW_TOKENS / (time.perf_counter() - t0)
        print(f"(c) ctranslate2 engine, int8 (converted once, {conv:.1f}s): {results['c_ct2_int8']:>9,.0f} tokens/s   "
              f"c/a = {results['c_ct2_int8'] / results['a_naive']:.1f}x (target >= 40)")
        assert len(out_c) == len(inputs)
    assert len(out_b) == len(inputs)
    if args.ray:
        results.update(ray_row(cfg, inputs, out_b))
    if args.json:
        Path(args.json).write_text(json.dumps({"size": args.size, "device": device, "inputs": len(inputs),
                                               "naive_inputs": len(naive), **results}, indent=2))
    return 0


def ray_row(cfg, inputs: list[str], expected: list[str]) -> dict:
    """(d): the hf engine behind the item cache (no cache file), chunks of 256 items, on the
    local executor and on a local Ray cluster with one actor of every CPU; best of two each."""
    import os

    import ray

    from refuseu import executors
    from refuseu.config import ExecutorConfig
    from refuseu.engines.cache import CachedTranslator
    from refuseu.engines.translators.hf import HFTranslator

    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    times = {"local": float("inf"), "ray": float("inf")}
    try:
        for _ in range(2):
            for kind, ex in (("local", ExecutorConfig()),
                             ("ray", ExecutorConfig(kind="ray", concurrency=1, num_cpus=cpus))):
                with executors.use(ex):
                    t0 = time.perf_counter()
                    out = CachedTranslator(HFTranslator(cfg), None, chunk=256).translate(inputs, src="en", tgt="de")
                    times[kind] = min(times[kind], time.perf_counter() - t0)
                assert out == expected, f"{kind} executor gave other translations"
    finally:
        ray.shutdown()
    ratio = times["ray"] / times["local"]
    print(f"(d) hf engine on Ray, 1 actor ({cpus} CPUs), load included: {len(inputs) * NEW_TOKENS / times['ray']:>9,.0f} "
          f"tokens/s   Ray time / local time = {ratio:.2f}x (goal <= 1.3 on CPU; local {times['local']:.1f}s)")
    return {"d_ray_1_actor": len(inputs) * NEW_TOKENS / times["ray"], "d_local_with_load": len(inputs) * NEW_TOKENS
            / times["local"], "d_ray_over_local": ratio}


if __name__ == "__main__":
    sys.exit(main())
