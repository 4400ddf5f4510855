"""refuseu: rebuild and release multilingual refusal-alignment (DPO) datasets."""

__version__ = "0.1.0"

# Bumped whenever a change to the pipeline code changes what a stage produces; it is part
# of every stage signature, so cached stage outputs from older code are not reused.
CODE_VERSION = "3"
