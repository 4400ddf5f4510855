"""Language identification engines: fastText (lid.176 lite bundled, or a model by path/Hub id),
lingua (bundled models) and the combined rule used by default."""

from refuseu.engines.registry import Registry

LID_ENGINES = Registry("lid", {
    "fasttext": ("refuseu.engines.lid.fasttext_lid:FastTextLid", "lid"),
    "lingua": ("refuseu.engines.lid.lingua_lid:LinguaLid", "lid"),
    "combined": ("refuseu.engines.lid.combined:CombinedLid", "lid"),
})
