"""Language identification engines: fastText (lid.176 lite bundled, or a model by path/Hub id),
lingua (bundled models) and the combined rule used by default."""

from refuseu.engines.registry import Registry

LID_ENGINES = Registry("lid", {
    "fasttext": ("refuseu.engines.lid.fasttext_lid:FastTextLid", "lid"),
    "lingua": ("refuseu.engines.lid.lingua_lid:LinguaLid", "lid"),
    "combined": ("refuseu.engines.lid.combined:CombinedLid", "lid"),
})


def make_identifier(config, languages: list[str]):
    """The identifier a :class:`~refuseu.config.LidConfig` describes, for ``languages``."""
    cls = LID_ENGINES.get(config.engine)
    if config.engine == "fasttext":
        return cls(config.fasttext_model)
    if config.engine == "lingua":
        return cls(languages)
    return cls(languages, fasttext_model=config.fasttext_model)
