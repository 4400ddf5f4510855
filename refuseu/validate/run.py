"""``refuseu validate``: DPO on a release's train split, evaluation before and after.

With ``--tiny`` the run is the experiment in miniature, on a tiny model built locally: a short
supervised fine-tuning first teaches it to comply (harmful prompts -> the release's
``rejected`` texts, every language), so attack success starts high; DPO on the train
languages should then bring it down. ``--transfer`` trains once on English only and once on
all train languages and tabulates the attack success rate per evaluation language."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from refuseu.errors import InputError
from refuseu.languages import parse_langs
from refuseu.release.inspect import load_release_rows
from refuseu.release.manifest import read_manifest
from refuseu.release.verify import require_release_folder, require_valid
from refuseu.validate.metrics import per_language, reward_accuracy
from refuseu.validate.train import conversation, train_comply, train_dpo


# Settings a field left at None takes: for a real model, and for the tiny model built locally
# (full fine-tuning, a higher learning rate and an NLL term on the chosen answers, since a
# random-weight model must first learn to write a refusal at all; larger batches of shorter
# texts, since it trains on the openings of the answers; the reference model's log-probabilities
# computed once before DPO, which saves about a tenth of its time on a CPU; fewer evaluation prompts).
DEFAULTS = {"lora": True, "learning_rate": 5e-5, "sft_weight": 0.0, "max_steps": 60, "eval_limit": None,
            "batch_size": 8, "max_length": 256, "precompute_ref": False}
TINY_DEFAULTS = {"lora": False, "learning_rate": 5e-3, "sft_weight": 2.0, "max_steps": 600, "eval_limit": 10,
                 "batch_size": 16, "max_length": 128, "precompute_ref": True}


@dataclass
class ValidateConfig:
    model: str | None = None            # Hub id or folder; None with tiny=True
    train_langs: str = "all"
    eval_langs: str = "all"
    lora: bool | None = None            # None: LoRA for a real model, full fine-tuning for the tiny one
    max_steps: int | None = None
    beta: float = 0.1
    learning_rate: float | None = None
    batch_size: int | None = None
    max_length: int | None = None
    max_new_tokens: int = 24
    transfer: bool = False
    tiny: bool = False
    seed: int = 0
    out: str = "validation"
    eval_limit: int | None = None      # eval prompts per language and kind (None: all; tiny: 10)
    judge_engine: str = "lexicon"      # lexicon | classifier | llm (see refuseu.judges)
    judge_model: str | None = None
    sft_weight: float | None = None    # > 0: DPO + this weight x NLL of the chosen answers (RPO)
    comply_steps: int = 200            # tiny only: SFT steps that teach the tiny model to comply
    comply_learning_rate: float = 1e-2
    comply_batch_size: int = 16
    tiny_hidden: int = 64              # tiny only: the model's width and depth
    tiny_layers: int = 2
    tiny_vocab: int = 2000             # tiny only: size of the BPE vocabulary trained on the release's texts
    tiny_answer_sentences: int = 2     # tiny only: train on the first sentences of each answer (0: whole answers)
    tiny_harmful_only: bool = True     # tiny only: DPO on the harmful pairs only (see tiny_train_pairs)
    precompute_ref: bool | None = None  # reference log-probabilities computed once before DPO, not at every step

    def __post_init__(self):
        for key, value in (TINY_DEFAULTS if self.tiny else DEFAULTS).items():
            if getattr(self, key) is None:
                setattr(self, key, value)


_SENTENCE = re.compile(r"(?<=[.!?…])\s+")


def opening_sentences(text: str, n: int) -> str:
    """The first ``n`` sentences of ``text`` (all of it when ``n`` is 0)."""
    return " ".join(_SENTENCE.split(text.strip(), maxsplit=n)[:n]) if n else text


def answer_openings(pairs: pl.DataFrame, n: int) -> pl.DataFrame:
    """``pairs`` with chosen and rejected cut to their first ``n`` sentences: the opening, which
    is where a refusal or a compliance shows (the judge reads the first sentences), is what a
    tiny model can learn within a short run; whole answers spread its few steps over text the
    judge never reads."""
    if not n:
        return pairs
    return pairs.with_columns(pl.col(c).map_elements(lambda t: opening_sentences(t, n), return_dtype=pl.String)
                              for c in ("chosen", "rejected"))


def tiny_train_pairs(pairs: pl.DataFrame, cfg: "ValidateConfig") -> pl.DataFrame:
    """What the tiny model trains on: the openings of the answers, and with ``tiny_harmful_only``
    the harmful pairs only. A random-weight model of this size cannot tell a harmful prompt from
    a benign one written to look like it (the release's benign prompts are such look-alikes), and
    the benign pairs' rejected answers are refusals in the same words as the harmful pairs' chosen
    ones: trained on both, its updates cancel in those words and what it generates is a refusal
    with the verb missing, which no judge counts. Over-refusal is still measured on the benign
    evaluation prompts."""
    if cfg.tiny_harmful_only:
        pairs = pairs.filter(pl.col("kind") == "harmful")
    return answer_openings(pairs, cfg.tiny_answer_sentences)


def load_pairs(rows: pl.DataFrame, langs: list[str], split: str) -> pl.DataFrame:
    """The pairs of ``langs`` in ``split`` of a release's rows (:func:`load_release_rows`)."""
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
            ctx = tok.apply_chat_template(conversation(p), tokenize=False, add_generation_prompt=True)
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


def pair_logps(model, tok, pairs: pl.DataFrame) -> tuple[list[float], list[float]]:
    prompts = pairs["prompt"].to_list()
    return (sequence_logps(model, tok, prompts, pairs["chosen"].to_list()),
            sequence_logps(model, tok, prompts, pairs["rejected"].to_list()))


def reward_accuracies(pairs: pl.DataFrame, policy: tuple, reference: tuple, beta: float,
                      langs: list[str]) -> tuple[float | None, dict[str, float | None]]:
    """Held-out accuracy of DPO's implicit reward (beta * log pi/pi_ref), overall and per language."""
    rc = [beta * (a - b) for a, b in zip(policy[0], reference[0])]
    rr = [beta * (a - b) for a, b in zip(policy[1], reference[1])]
    pl_langs = pairs["lang"].to_list()
    by_lang = {lang: reward_accuracy([c for c, g in zip(rc, pl_langs) if g == lang],
                                     [r for r, g in zip(rr, pl_langs) if g == lang]) for lang in langs}
    return reward_accuracy(rc, rr), by_lang


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


class Evaluator:
    """Generates an answer per evaluation prompt (greedy), judges it and identifies its
    language: attack success rate, over-refusal and language consistency per language."""

    def __init__(self, eval_rows: pl.DataFrame, cfg: ValidateConfig, langs: list[str], out: Path, reporter):
        from refuseu.config import JudgeConfig, LidConfig
        from refuseu.engines.lid.combined import CombinedLid
        from refuseu.judges import make_judge

        from pydantic import ValidationError

        self.rows, self.cfg, self.out, self.reporter = eval_rows, cfg, out, reporter
        try:
            judge_cfg = JudgeConfig(engine=cfg.judge_engine, model=cfg.judge_model, seed=cfg.seed)
        except ValidationError as e:
            raise InputError(e.errors()[0]["msg"].removeprefix("Value error, "), field="--judge-model") from None
        self.judge = make_judge(judge_cfg, cache_dir=out / "judge-cache")
        self.judge.prepare()  # a missing judge model stops the run before any training
        self.lid, self.threshold = CombinedLid(langs), LidConfig().threshold

    def __call__(self, model_dir: Path, label: str) -> dict:
        from refuseu.config import RespondConfig
        from refuseu.engines.generators.hf import HFGenerator

        gen = HFGenerator(str(model_dir), RespondConfig(max_new_tokens=self.cfg.max_new_tokens, do_sample=False,
                                                        seed=self.cfg.seed))
        prompts, langs = self.rows["prompt"].to_list(), self.rows["lang"].to_list()
        answers: list[str] = []
        chunk = 64
        with self.reporter.bar(f"{label}: generating", len(prompts)) as bar:
            for i in range(0, len(prompts), chunk):
                answers += gen.generate(prompts[i:i + chunk], system=None)
                bar.update(len(prompts[i:i + chunk]))
        with self.reporter.bar(f"{label}: judging", len(prompts)) as bar:
            verdicts = self.judge.judge(answers, langs, prompts, progress=bar)
        ids = self.lid.predict(answers, langs)
        rows = []
        with (self.out / "answers.jsonl").open("a", encoding="utf-8") as f:
            for r, a, v, p in zip(self.rows.iter_rows(named=True), answers, verdicts, ids):
                # An empty or unconfidently identified answer is in no language (not consistent).
                answer_lang = p.lang if a.strip() and p.score >= self.threshold else "und"
                rows.append({"lang": r["lang"], "kind": r["kind"], "refused": v.is_refusal, "answer_lang": answer_lang})
                f.write(json.dumps({"model": label, "lang": r["lang"], "kind": r["kind"], "prompt_id": r["prompt_id"],
                                    "answer": a, "refused": v.is_refusal, "judge_score": round(v.score, 4),
                                    "answer_lang": answer_lang}, ensure_ascii=False) + "\n")
        return per_language(rows)


def _release(release: str | Path):
    root = require_release_folder(release)
    try:
        read_manifest(root)
    except FileNotFoundError:
        raise InputError("not a release folder (no manifest.json)", file=str(root)) from None
    except ValueError:
        pass
    return root, require_valid(root, action="train on it").manifest


def check_settings(cfg: ValidateConfig) -> None:
    """Refuse settings no run can use, before anything is loaded; each error names its option."""
    import math

    def number(value, option: str, *, whole: bool = False, positive: bool = True) -> None:
        ok = (isinstance(value, int) if whole else isinstance(value, (int, float)) and math.isfinite(value))
        if not ok or isinstance(value, bool) or (value <= 0 if positive else value < 0):
            allowed = f"a {'whole' if whole else 'finite'} number {'>= 1' if whole else '> 0' if positive else '>= 0'}"
            raise InputError(f"{option} {value!r}: allowed: {allowed}")

    number(cfg.max_steps, "--max-steps", whole=True)
    number(cfg.beta, "--beta")
    number(cfg.learning_rate, "--learning-rate")
    number(cfg.sft_weight, "--sft-weight", positive=False)
    if cfg.eval_limit is not None:
        number(cfg.eval_limit, "--eval-limit", whole=True)


def _model(cfg: ValidateConfig, rows: pl.DataFrame, out: Path, report) -> tuple[Path, str]:
    if cfg.tiny:
        from refuseu.devtools.tiny_llama import build_tiny_llama

        texts = [t for c in ("prompt", "chosen", "rejected") for t in rows[c].drop_nulls().unique().to_list()]
        base = build_tiny_llama(out / "tiny-model", extra_lines=texts, hidden=cfg.tiny_hidden, layers=cfg.tiny_layers,
                                vocab_size=cfg.tiny_vocab, seed=cfg.seed)
        harmful = rows.filter((pl.col("file_split") == "train") & (pl.col("kind") == "harmful")
                              & pl.col("rejected").is_not_null())
        harmful = answer_openings(harmful, cfg.tiny_answer_sentences)
        report(f"teaching the tiny model to comply: SFT on {harmful.height} harmful train prompts -> their "
               f"rejected texts ({harmful['lang'].n_unique()} languages), {cfg.comply_steps} steps")
        return (train_comply(base, harmful, cfg, out / "comply", steps=cfg.comply_steps,
                             learning_rate=cfg.comply_learning_rate, report=report),
                "tiny (built locally, taught to comply by SFT)")
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
    return model_dir, cfg.model


def run_validate(release: str | Path, cfg: ValidateConfig, *, report=print, reporter=None) -> dict:
    """Train and evaluate as ``cfg`` says; writes report.json, report.md and figures to ``cfg.out``."""
    import torch

    from refuseu.pipeline.progress import Reporter

    reporter = reporter or Reporter()
    threads = torch.get_num_threads()
    if cfg.tiny:
        # One thread: a tiny model gains nothing from more, and on a shared CPU it is much
        # faster; the numbers also do not depend on the machine's thread count.
        torch.set_num_threads(1)
    try:
        return _run(release, cfg, report, reporter)
    finally:
        torch.set_num_threads(threads)


def _run(release, cfg: ValidateConfig, report, reporter) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    check_settings(cfg)
    root, manifest = _release(release)
    train_langs = [lang for lang in parse_langs(cfg.train_langs) if lang in manifest["languages"]]
    eval_langs = [lang for lang in parse_langs(cfg.eval_langs) if lang in manifest["languages"]]
    rows = load_release_rows(root)
    train = load_pairs(rows, train_langs, "train")
    if train.height == 0:
        raise InputError("the release has no train pairs in the chosen languages", file=str(root), field="--train-langs")
    held = ", ".join(manifest["languages"])
    if not eval_langs:
        raise InputError(f"the release holds none of the chosen languages (it holds: {held})", file=str(root),
                         field="--eval-langs")
    test = load_pairs(rows, eval_langs, "test")
    ev = rows.filter((pl.col("config") == "evaluation") & pl.col("lang").is_in(eval_langs))
    if test.height == 0 or ev.height == 0:
        raise InputError(f"the release has no test {'pairs' if test.height == 0 else 'prompts'} in the chosen "
                         f"languages ({', '.join(eval_langs)}), so there is nothing to evaluate", file=str(root),
                         field="--eval-langs", hint="build the release with a test split (split.test_size > 0)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("train_log.jsonl", "answers.jsonl"):
        (out / stale).unlink(missing_ok=True)
    shape = (lambda pairs: tiny_train_pairs(pairs, cfg)) if cfg.tiny else (lambda pairs: pairs)
    train = shape(train)   # what the model trains on; evaluation sees the whole test pairs
    if train.height == 0:
        raise InputError("the release has no harmful train pairs in the chosen languages", file=str(root),
                         field="--train-langs")
    if cfg.eval_limit:
        ev = ev.group_by("lang", "kind", maintain_order=True).head(cfg.eval_limit)
    evaluate = Evaluator(ev, cfg, eval_langs, out, reporter)
    model_dir, model_label = _model(cfg, rows, out, report)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    reference = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    probe = safety_probe(test)
    ref_test, ref_probe = pair_logps(reference, tok, test), pair_logps(reference, tok, probe)
    report(f"evaluating {model_label} before DPO ({ev.height} prompts, {test.height} test pairs, "
           f"{probe.height} probe pairs)")

    harmful_test = [k == "harmful" for k in test["kind"].to_list()]

    def harmful_only(lp: tuple) -> tuple:
        return tuple([x for x, h in zip(side, harmful_test) if h] for side in lp)

    def measured(per_lang: dict, test_lp: tuple, probe_lp: tuple) -> dict:
        acc, acc_by = reward_accuracies(test, test_lp, ref_test, cfg.beta, eval_langs)
        # The same on the harmful test pairs alone (what the tiny model trains on).
        acc_harmful, _ = reward_accuracies(test.filter(pl.col("kind") == "harmful"), harmful_only(test_lp),
                                           harmful_only(ref_test), cfg.beta, eval_langs)
        probe_acc, probe_by = reward_accuracies(probe, probe_lp, ref_probe, cfg.beta, eval_langs)
        return {"per_language": per_lang, "reward_accuracy": acc, "reward_accuracy_harmful": acc_harmful,
                "safety_probe_accuracy": probe_acc, "reward_accuracy_per_language": acc_by,
                "safety_probe_per_language": probe_by}

    # Before training the policy is the reference: every implicit reward is 0 (accuracy 0.5).
    before = measured(evaluate(model_dir, "before"), ref_test, ref_probe)
    harmful = "harmful " if cfg.tiny and cfg.tiny_harmful_only else ""
    report(f"DPO on {train.height} {harmful}pairs ({', '.join(train_langs)}), {cfg.max_steps} steps, "
           f"{'LoRA' if cfg.lora else 'full'}; per-step logs: {out / 'train_log.jsonl'}")
    trained_dir = train_dpo(model_dir, train, cfg, out / "dpo", report=report)
    policy = AutoModelForCausalLM.from_pretrained(trained_dir).eval()
    report("evaluating after DPO")
    after = measured(evaluate(trained_dir, "after"), pair_logps(policy, tok, test), pair_logps(policy, tok, probe))
    transfer = transfer_langs = transfer_steps = None
    if cfg.transfer:
        all_name = "all" if set(train_langs) == set(manifest["languages"]) else ",".join(train_langs)
        transfer = {}
        transfer_langs = {}
        transfer_steps = {}
        en = shape(load_pairs(rows, ["en"], "train")) if "en" in manifest["languages"] else None
        if en is not None and en.height and train_langs != ["en"]:
            # The tiny model makes as many passes over the English pairs as the main run makes over
            # all of its own: all the steps on one language's hundred pairs would have it learn
            # them by heart and carry nothing to the other languages.
            en_steps = max(1, round(cfg.max_steps * en.height / train.height)) if cfg.tiny else cfg.max_steps
            report(f"transfer: DPO on English only ({en.height} {harmful}pairs), {en_steps} steps")
            en_dir = train_dpo(model_dir, en, cfg, out / "transfer-en", label="DPO (en only)", steps=en_steps,
                               report=report)
            transfer["en"] = {lang: v["asr"] for lang, v in evaluate(en_dir, "after DPO on en").items()}
            transfer_langs["en"], transfer_steps["en"] = ["en"], en_steps
        transfer[all_name] = {lang: v["asr"] for lang, v in after["per_language"].items()}
        transfer_langs[all_name], transfer_steps[all_name] = train_langs, cfg.max_steps
    result = {"release": str(root), "version": manifest["version"], "build_signature": manifest["build_signature"],
              "model": model_label, "settings": {**asdict(cfg), "train_langs": train_langs, "eval_langs": eval_langs},
              "judge": evaluate.judge.name, "train_pairs": train.height, "test_pairs": test.height,
              "probe_pairs": probe.height, "eval_prompts": ev.height,
              "train_pairs_per_language": {lang: train.filter(pl.col("lang") == lang).height for lang in train_langs},
              "test_pairs_per_language": {lang: test.filter(pl.col("lang") == lang).height for lang in eval_langs},
              "probe_pairs_per_language": {lang: probe.filter(pl.col("lang") == lang).height for lang in eval_langs},
              "before": before, "after": after, "transfer": transfer, "transfer_train_langs": transfer_langs,
              "transfer_steps": transfer_steps,
              "seconds": round(time.perf_counter() - t0, 1), "device": "cuda" if torch.cuda.is_available() else "cpu"}
    from refuseu.validate.report import write_report
    write_report(result, out)
    return result
