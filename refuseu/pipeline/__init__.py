"""The stage runner: column checks, signatures, cached stage outputs, the funnel."""

from refuseu.pipeline.runner import Pipeline, PipelineResult, signature_of

__all__ = ["Pipeline", "PipelineResult", "signature_of"]
