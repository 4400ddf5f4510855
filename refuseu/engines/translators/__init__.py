"""Translation engines. ``TRANSLATORS.get(name)`` returns the engine class."""

from refuseu.engines.registry import Registry

TRANSLATORS = Registry("translate", {
    "tm": ("refuseu.engines.translators.tm:TranslationMemory", "all"),
})
