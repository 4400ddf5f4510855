"""Translation engines. ``TRANSLATORS.get(name)`` returns the engine class."""

from refuseu.engines.registry import Registry

TRANSLATORS = Registry("translate", {
    "tm": ("refuseu.engines.translators.tm:TranslationMemory", "all"),
    "hf": ("refuseu.engines.translators.hf:HFTranslator", "mt"),
    "ctranslate2": ("refuseu.engines.translators.ct2:CT2Translator", "mt"),
    "deep-translator": ("refuseu.engines.translators.web:WebTranslator", "mt"),
})
