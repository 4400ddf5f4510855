"""One-command library functions over a curator's own files (``refuseu langid``, ``judge``,
``score``, ``translate``): each reads a JSONL, runs one engine, writes a JSONL."""
