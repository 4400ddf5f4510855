"""Judges: the multilingual refusal detector (lexicon, optional classifier)."""

from refuseu.judges.refusal import RefusalDetector

__all__ = ["RefusalDetector"]
