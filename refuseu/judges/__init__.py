"""Judges: the multilingual refusal detector (lexicon, optional classifier)."""

from refuseu.judges.refusal import RefusalDetector

__all__ = ["RefusalDetector"]

# Judge engines (lexicon, classifier, llm): make_judge(JudgeConfig) -> judge.judge(...) -> [Verdict]
from refuseu.judges.engines import JudgeConfig, Verdict, make_judge  # noqa: E402

__all__ += ["JudgeConfig", "Verdict", "make_judge"]
