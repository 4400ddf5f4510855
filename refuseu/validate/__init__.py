"""Validation of a release: DPO fine-tuning (TRL, LoRA by default) and multilingual safety
evaluation before and after (attack success rate, over-refusal, language consistency,
held-out reward accuracy), with an optional train-setting x eval-language transfer matrix."""
