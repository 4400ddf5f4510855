"""Tiny COMET checkpoints on a tiny local XLM-R encoder (random weights): a reference-based
``RegressionMetric`` and a reference-free ``ReferencelessRegression`` (QE), saved the way
COMET releases are laid out (``<dir>/checkpoints/model.ckpt`` with ``<dir>/hparams.yaml``)
and loaded with ``comet.load_from_checkpoint`` like any downloaded model."""

from __future__ import annotations

from pathlib import Path

import yaml

from refuseu.devtools.tiny_models import train_spm


def build_tiny_xlmr(out: str | Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    out = Path(out)
    sp = train_spm(out / "spm" / "sp", 600, control_ids=True)
    XLMRobertaTokenizer(vocab_file=str(sp)).save_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)  # the fast tokenizer COMET uses
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = XLMRobertaConfig(vocab_size=max(len(tok), max(tok.get_vocab().values()) + 1), hidden_size=32,
                           num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           max_position_embeddings=514, pad_token_id=tok.pad_token_id,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    XLMRobertaModel(cfg, add_pooling_layer=False).save_pretrained(out)
    import shutil
    shutil.rmtree(out / "spm", ignore_errors=True)
    return out


def build_tiny_comet(out: str | Path, encoder_dir: str | Path, *, kind: str = "regression", seed: int = 0) -> Path:
    """A COMET checkpoint folder; returns the path of ``checkpoints/model.ckpt``."""
    import pytorch_lightning as pl
    import torch
    from comet.models import ReferencelessRegression, RegressionMetric

    out = Path(out)
    cls = {"regression": RegressionMetric, "qe": ReferencelessRegression}[kind]
    torch.manual_seed(seed)
    model = cls(pretrained_model=str(encoder_dir), local_files_only=True, hidden_sizes=[32, 16],
                load_pretrained_weights=True, layer="mix", pool="avg", nr_frozen_epochs=0,
                train_data=[], validation_data=[])
    ckpt = out / "checkpoints" / "model.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(str(ckpt))
    hparams = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.hparams).items()}
    hparams["load_pretrained_weights"] = False
    (out / "hparams.yaml").write_text(yaml.safe_dump(hparams), encoding="utf-8")
    return ckpt
