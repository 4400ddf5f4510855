"""``refuseu validate``: DPO on a release's train split, evaluation before and after."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from refuseu.errors import InputError
from refuseu.languages import parse_langs
from refuseu.release.inspect import load_release_rows
from refuseu.release.manifest import read_manifest
from refuseu.release.verify import require_valid
from refuseu.validate.metrics import per_language, reward_accuracy


@dataclass
class ValidateConfig:
    model: str | None = None            # Hub id or folder; None with tiny=True
    train_langs: str = "all"
    eval_langs: str = "all"
    lora: bool = True
    max_steps: int = 60
    beta: float = 0.1
    learning_rate: float = 5e-5
    batch_size: int = 8
    max_length: int = 256
    max_new_tokens: int = 24
    transfer: bool = False
    tiny: bool = False
    seed: int = 0
    out: str = "validation"
    eval_limit: int | None = None      # eval prompts per language (None: all)


def _conv(prompt: str, answer: str | None = None):
    p = [{"role": "user", "content": prompt}]
    return p if answer is None else (p, [{"role": "assistant", "content": answer}])


def load_pairs(release: Path, langs: list[str], split: str) -> pl.DataFrame:
    rows = load_release_rows(release)
    return rows.filter(pl.col("config").is_in([f"lang_{lang}" for lang in langs]) & (pl.col("file_split") == split)
                       & pl.col("chosen").is_not_null() & pl.col("rejected").is_not_null())


def sequence_logps(model, tok, prompts: list[str], answers: list[str], *, batch_size: int = 16) -> list[float]:
    """Sum of log-probabilities of each answer given its chat-templated prompt."""
    import torch

    out = []
    model.eval()
    for i in range(0, len(prompts), batch_size):
        ps, ans = prompts[i:i + batch_size], answers[i:i + batch_size]
        seqs, starts = [], []
        for p, a in zip(ps, ans):
            ctx = tok.apply_chat_template(_conv(p), tokenize=False, add_generation_prompt=True)
            cids = tok(ctx, add_special_tokens=False)["input_ids"]
            aids = tok(a + (tok.eos_token or ""), add_special_tokens=False)["input_ids"]
            seqs.append(cids + aids)
            starts.append(len(cids))
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
            mask[r, :len(s)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1).to(model.device))[..., 0]
        for r, s in enumerate(seqs):
            out.append(float(logp[r, starts[r] - 1:len(s) - 1].sum()))
    return out


def implicit_reward_accuracy(policy, reference, tok, pairs: pl.DataFrame, beta: float) -> float | None:
    if pairs.height == 0:
        return None
    prompts, chosen, rejected = pairs["prompt"].to_list(), pairs["chosen"].to_list(), pairs["rejected"].to_list()
    pc, pr = sequence_logps(policy, tok, prompts, chosen), sequence_logps(policy, tok, prompts, rejected)
    rc, rr = sequence_logps(reference, tok, prompts, chosen), sequence_logps(reference, tok, prompts, rejected)
    return reward_accuracy([beta * (a - b) for a, b in zip(pc, rc)], [beta * (a - b) for a, b in zip(pr, rr)])


def safety_probe(test: pl.DataFrame) -> pl.DataFrame:
    """Label-independent pairs for the harmful test prompts: a native refusal from the
    toolkit's templates (chosen) against a compliance opener (rejected). Unlike the
    release's own test pairs, these do not follow the release's labels, so a release whose
    chosen and rejected were swapped makes this accuracy fall."""
    from refuseu.engines.responders.templates import TemplateRegistry

    reg = TemplateRegistry()
    rows = []
    for r in test.filter(pl.col("kind") == "harmful").iter_rows(named=True):
        tpl = reg.get(r["lang"])
        pool = tpl.refusal_pool(r["category"])
        k = int(r["prompt_id"][:8], 16)
        rows.append({"prompt": r["prompt"], "lang": r["lang"], "chosen": pool[(k + 1) % len(pool)],
                     "rejected": tpl.compliance_openers[(k + 3) % len(tpl.compliance_openers)]})
    return pl.DataFrame(rows, schema={"prompt": pl.String, "lang": pl.String, "chosen": pl.String,
                                      "rejected": pl.String})


def evaluate_answers(model_dir: Path, eval_rows: pl.DataFrame, cfg: ValidateConfig, langs: list[str]) -> dict:
    """Generate an answer per evaluation prompt; ASR, over-refusal and language consistency per language."""
    from refuseu.config import RespondConfig
    from refuseu.engines.generators.hf import HFGenerator
    from refuseu.engines.lid.combined import CombinedLid
    from refuseu.judges import RefusalDetector

    gen = HFGenerator(str(model_dir), RespondConfig(max_new_tokens=cfg.max_new_tokens, do_sample=False, seed=cfg.seed))
    from refuseu.config import LidConfig

    det, lid = RefusalDetector(), CombinedLid(langs)
    threshold = LidConfig().threshold
    rows = []
    for (lang,), part in eval_rows.group_by("lang", maintain_order=True):
        answers = gen.generate(part["prompt"].to_list(), system=None)
        refused = det.is_refusal(answers, [lang] * len(answers))
        ids = lid.predict(answers, [lang] * len(answers))
        # An empty or unconfidently identified answer is in no language (it does not count as consistent).
        rows += [{"lang": lang, "kind": k, "refused": f,
                  "answer_lang": p.lang if a.strip() and p.score >= threshold else "und"}
                 for k, (f, _), p, a in zip(part["kind"].to_list(), refused, ids, answers)]
    return per_language(rows)


def _train(model_dir: Path, train: pl.DataFrame, cfg: ValidateConfig, out: Path) -> Path:
    """DPO with TRL (LoRA through peft by default); returns the folder of the trained model."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    records = []
    for p, c, r in zip(train["prompt"].to_list(), train["chosen"].to_list(), train["rejected"].to_list()):
        prompt, chosen = _conv(p, c)
        records.append({"prompt": prompt, "chosen": chosen, "rejected": _conv(p, r)[1]})
    ds = datasets.Dataset.from_list(records).shuffle(seed=cfg.seed)
    args = DPOConfig(output_dir=str(out / "trainer"), per_device_train_batch_size=cfg.batch_size,
                     max_steps=cfg.max_steps, learning_rate=cfg.learning_rate, beta=cfg.beta,
                     max_length=cfg.max_length, logging_steps=max(1, cfg.max_steps // 5), save_strategy="no",
                     report_to=[], seed=cfg.seed, use_cpu=not torch.cuda.is_available(), dataset_num_proc=None)
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig
        peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft_config)
    trainer.train()
    trained = trainer.model
    if cfg.lora:
        trained = trained.merge_and_unload()
    dest = out / "trained-model"
    trained.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def run_validate(release: str | Path, cfg: ValidateConfig, *, report=print) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    root = Path(release)
    try:
        manifest = read_manifest(root)
    except FileNotFoundError:
        raise InputError("not a release folder (no manifest.json)", file=str(root)) from None
    except ValueError:
        manifest = None
    manifest = require_valid(root, action="train on it").manifest
    train_langs = [lang for lang in parse_langs(cfg.train_langs) if lang in manifest["languages"]]
    eval_langs = [lang for lang in parse_langs(cfg.eval_langs) if lang in manifest["languages"]]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = load_release_rows(root)
    if cfg.tiny:
        from refuseu.devtools.tiny_llama import build_tiny_llama
        texts = [t for c in ("prompt", "chosen", "rejected") for t in rows[c].drop_nulls().unique().to_list()]
        model_dir = build_tiny_llama(out / "tiny-model", extra_lines=texts, hidden=64, layers=2)
        model_label = "tiny (built locally, random weights)"
    else:
        if not cfg.model:
            raise InputError("give --model ID|PATH, or --tiny", field="--model")
        from refuseu.engines.models import resolve_model_dir
        from refuseu.errors import ModelUnavailableError
        try:
            model_dir, _ = resolve_model_dir(cfg.model, stage="validate", flag="--model")
        except ModelUnavailableError as e:
            if "not available locally" not in e.message:
                raise
            raise ModelUnavailableError(
                e.message, hint=f"run `refuseu models pull --model {cfg.model}` to download it into the Hugging "
                                "Face cache (needs network), or give a local folder with --model") from None
        model_label = cfg.model
    train = load_pairs(root, train_langs, "train")
    test = load_pairs(root, eval_langs, "test")
    ev = rows.filter((pl.col("config") == "evaluation") & pl.col("lang").is_in(eval_langs))
    if cfg.eval_limit:
        ev = ev.group_by("lang", "kind", maintain_order=True).head(cfg.eval_limit)
    if train.height == 0:
        raise InputError("the release has no train pairs in the chosen languages", file=str(root), field="--train-langs")
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    reference = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    report(f"evaluating {model_label} before training ({ev.height} prompts, {test.height} test pairs)")
    probe = safety_probe(test)
    before = {"per_language": evaluate_answers(model_dir, ev, cfg, eval_langs),
              "reward_accuracy": implicit_reward_accuracy(reference, reference, tok, test, cfg.beta),
              "safety_probe_accuracy": implicit_reward_accuracy(reference, reference, tok, probe, cfg.beta)}
    report(f"DPO on {train.height} pairs ({', '.join(train_langs)}), {cfg.max_steps} steps, "
           f"{'LoRA' if cfg.lora else 'full'}")
    trained_dir = _train(model_dir, train, cfg, out)
    policy = AutoModelForCausalLM.from_pretrained(trained_dir).eval()
    after = {"per_language": evaluate_answers(trained_dir, ev, cfg, eval_langs),
             "reward_accuracy": implicit_reward_accuracy(policy, reference, tok, test, cfg.beta),
             "safety_probe_accuracy": implicit_reward_accuracy(policy, reference, tok, probe, cfg.beta)}
    per_lang_reward = {}
    for lang in eval_langs:
        sub = test.filter(pl.col("lang") == lang)
        per_lang_reward[lang] = implicit_reward_accuracy(policy, reference, tok, sub, cfg.beta)
    after["reward_accuracy_per_language"] = per_lang_reward
    transfer = None
    if cfg.transfer:
        transfer = {}
        for setting in (["en"], train_langs):
            name = ",".join(setting) if len(setting) < len(train_langs) else "all"
            sub = load_pairs(root, setting, "train")
            tdir = _train(model_dir, sub, cfg, out / f"transfer-{name.replace(',', '_')}")
            res = evaluate_answers(tdir, ev, cfg, eval_langs)
            transfer[name] = {lang: v["asr"] for lang, v in res.items()}
    result = {"release": str(root), "version": manifest["version"], "build_signature": manifest["build_signature"],
              "model": model_label, "settings": {**asdict(cfg), "train_langs": train_langs, "eval_langs": eval_langs},
              "train_pairs": train.height, "test_pairs": test.height, "eval_prompts": ev.height,
              "before": before, "after": after, "transfer": transfer,
              "seconds": round(time.perf_counter() - t0, 1), "device": "cuda" if torch.cuda.is_available() else "cpu"}
    from refuseu.validate.report import write_report
    write_report(result, out)
    return result
