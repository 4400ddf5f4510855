"""Training for ``refuseu validate``: DPO with TRL (LoRA through peft by default) and, for the
tiny model, a short supervised fine-tuning that first teaches it to comply.

TRL's per-step logs (every value it reports) go to ``<out>/train_log.jsonl``; the terminal
gets one line per logging step (step, loss, and for DPO the reward accuracy and margin)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import polars as pl


def conversation(prompt: str, answer: str | None = None):
    """A user turn, or (user turn, assistant turn): the chat format TRL tokenizes with the
    model's own chat template."""
    p = [{"role": "user", "content": prompt}]
    return p if answer is None else (p, [{"role": "assistant", "content": answer}])


def _step_log_callback(path: Path, report: Callable[[str], None], label: str, max_steps: int):
    from transformers import TrainerCallback

    class StepLog(TrainerCallback):
        """Every log TRL emits as a JSON line in ``path``; a one-line summary on the terminal."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"run": label, "step": state.global_step, **logs}) + "\n")
            if "loss" not in logs:  # the end-of-training summary (runtime, mean loss) stays in the file
                return
            parts = [f"loss {logs['loss']:.3f}"]
            if "rewards/accuracies" in logs:
                parts.append(f"reward accuracy {logs['rewards/accuracies']:.2f}")
            if "rewards/margins" in logs:
                parts.append(f"margin {logs['rewards/margins']:.2f}")
            report(f"  {label} step {state.global_step}/{max_steps}: " + ", ".join(parts))

    return StepLog()


def _quiet_trainer(trainer, callback) -> None:
    """TRL prints each log dict (PrinterCallback) or a tqdm bar; ours replaces both."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(callback)


@contextmanager
def _no_tqdm():
    """tqdm bars off (TQDM_DISABLE) for the block, the variable restored after it."""
    before = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before


def _log_every(max_steps: int) -> int:
    """About six log lines per run, the last at the last step."""
    target = max(1, round(max_steps / 6))
    for n in range(target, max(1, target // 2) - 1, -1):
        if max_steps % n == 0:
            return n
    return target


def _common_args(cfg, out: Path, max_steps: int, learning_rate: float, batch_size: int) -> dict:
    import datasets
    import torch

    datasets.disable_progress_bars()  # TRL's tokenizing bars: the terminal gets the step lines only

    return dict(output_dir=str(out / "trainer"), per_device_train_batch_size=batch_size, max_steps=max_steps,
                learning_rate=learning_rate, max_length=cfg.max_length, logging_steps=_log_every(max_steps),
                save_strategy="no", report_to=[], seed=cfg.seed, data_seed=cfg.seed, disable_tqdm=True,
                use_cpu=not torch.cuda.is_available(), dataset_num_proc=None)


def _save(trainer, tok, dest: Path, *, merge: bool) -> Path:
    model = trainer.model.merge_and_unload() if merge else trainer.model
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def train_dpo(model_dir: Path, pairs: pl.DataFrame, cfg, out: Path, *, label: str = "DPO", steps: int | None = None,
              report: Callable[[str], None] = print) -> Path:
    """DPO on (prompt, chosen, rejected) rows for ``steps`` steps (default ``cfg.max_steps``);
    returns the folder of the trained (merged) model."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(cfg.seed)
    tok = _tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    records = [{"prompt": conversation(p), "chosen": conversation(p, c)[1], "rejected": conversation(p, r)[1]}
               for p, c, r in zip(pairs["prompt"].to_list(), pairs["chosen"].to_list(), pairs["rejected"].to_list())]
    ds = datasets.Dataset.from_list(records).shuffle(seed=cfg.seed)
    # sft_weight > 0 adds the likelihood of the chosen answers to the DPO loss (RPO): DPO alone
    # can widen the margin by pushing the rejected answers down without making the chosen
    # ones what the model generates, which a small model shows first.
    losses = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, cfg.sft_weight]) if cfg.sft_weight else {}
    steps = steps or cfg.max_steps
    args = DPOConfig(beta=cfg.beta, **losses, precompute_ref_log_probs=bool(cfg.precompute_ref),
                     **_common_args(cfg, out, steps, cfg.learning_rate, cfg.batch_size))
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig
        peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    with _no_tqdm():  # TRL's bar over the reference log-probabilities (precompute_ref)
        trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft_config)
    _quiet_trainer(trainer, _step_log_callback(out.parent / "train_log.jsonl", report, label, steps))
    trainer.train()
    return _save(trainer, tok, out / "trained-model", merge=cfg.lora)


def train_comply(model_dir: Path, rows: pl.DataFrame, cfg, out: Path, *, steps: int, learning_rate: float,
                 report: Callable[[str], None] = print) -> Path:
    """Supervised fine-tuning on harmful prompts -> their ``rejected`` (complying) texts, all
    parameters: a model that complies, so the attack success rate starts high before DPO."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(cfg.seed)
    tok = _tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    records = [{"prompt": conversation(p), "completion": conversation(p, r)[1]}
               for p, r in zip(rows["prompt"].to_list(), rows["rejected"].to_list())]
    ds = datasets.Dataset.from_list(records).shuffle(seed=cfg.seed)
    args = SFTConfig(**_common_args(cfg, out, steps, learning_rate, cfg.comply_batch_size), packing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    _quiet_trainer(trainer, _step_log_callback(out.parent / "train_log.jsonl", report, "SFT (comply)", steps))
    trainer.train()
    return _save(trainer, tok, out / "complying-model", merge=False)
