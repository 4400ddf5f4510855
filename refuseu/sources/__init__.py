"""Sources: English prompts from the embedded seed, local files or Hugging Face datasets.

Every reader returns a polars DataFrame with the raw-prompt columns
(text, kind, category, attack_style, source, source_row), validated against the taxonomy.
"""

from refuseu.sources.readers import RAW_COLUMNS, fingerprint_source, read_source, read_sources

__all__ = ["RAW_COLUMNS", "fingerprint_source", "read_source", "read_sources"]
