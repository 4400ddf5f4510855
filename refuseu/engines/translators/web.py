"""Web translation APIs through deep-translator: Google, DeepL, Microsoft, LibreTranslate,
MyMemory.

deep-translator calls ``requests`` without a timeout, so every call here runs with a
default timeout injected for its duration; transient failures (timeouts, connection
errors, 429 and 5xx) are retried with exponential backoff; requests are spaced by a rate
limit. API keys come from the environment only and are scrubbed from every message.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

from refuseu.config import TranslateConfig
from refuseu.errors import BuildError, RecipeError
from refuseu.languages import LANGUAGES

# provider -> (deep-translator class, environment variable holding the key (the names
# deep-translator itself reads), key required)
PROVIDERS = {
    "google": ("GoogleTranslator", None, False),
    "deepl": ("DeeplTranslator", "DEEPL_API_KEY", True),
    "microsoft": ("MicrosoftTranslator", "MICROSOFT_API_KEY", True),
    "libre": ("LibreTranslator", "LIBRE_API_KEY", False),
    "mymemory": ("MyMemoryTranslator", None, False),
}
_patch_lock = threading.Lock()
_TABLES = {"google": "GOOGLE_LANGUAGES_TO_CODES", "deepl": "DEEPL_LANGUAGE_TO_CODE",
           "libre": "LIBRE_LANGUAGES_TO_CODES", "mymemory": "MY_MEMORY_LANGUAGES_TO_CODES"}


def _known_codes(provider: str) -> set[str] | None:
    name = _TABLES.get(provider)
    if name is None:
        return None
    try:
        from deep_translator import constants
    except ImportError:
        return None
    return set(getattr(constants, name).values())


@contextlib.contextmanager
def default_timeout(seconds: float):
    """Give every ``requests`` call made inside the block a timeout unless it sets one."""
    import requests

    with _patch_lock:
        original = requests.sessions.Session.request

        def request(self, method, url, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = seconds
            return original(self, method, url, **kwargs)

        requests.sessions.Session.request = request
        try:
            yield
        finally:
            requests.sessions.Session.request = original


class WebTranslator:
    name = "deep-translator"

    def __init__(self, config: TranslateConfig):
        self.config = config
        self.provider = config.provider or config.model or "google"
        if self.provider not in PROVIDERS:
            raise RecipeError(f"unknown deep-translator provider '{self.provider}'", field="translate.provider",
                              hint=f"one of: {', '.join(PROVIDERS)}")
        self._last = 0.0

    # identity (never the key) ----------------------------------------------------------
    def settings(self) -> dict:
        return {"engine": "deep-translator", "provider": self.provider, "url": self.config.provider_url}

    def signature(self) -> dict:
        return self.settings()

    def covers(self, lang: str) -> bool:
        return self._code(lang) is not None

    def _code(self, lang: str) -> str | None:
        """The provider's code for ``lang``, or None when the provider does not offer it
        (deep-translator's own language tables; Microsoft's is fetched online, so it is
        trusted as given)."""
        entry = LANGUAGES.get(lang)
        if entry is None:
            return None
        code = entry.deepl if self.provider == "deepl" else entry.google
        table = _known_codes(self.provider)
        if code is None or table is None:
            return code
        if code in table:
            return code
        return next((c for c in table if c.split("-")[0] == code), None)

    def _key(self) -> str | None:
        env = PROVIDERS[self.provider][1]
        return os.environ.get(env) if env else None

    def prepare(self, languages: list[str]) -> None:
        cls_name, env, required = PROVIDERS[self.provider]
        try:
            import deep_translator  # noqa: F401
        except ImportError:
            raise BuildError("the deep-translator engine needs the deep-translator package",
                             hint="pip install 'refuseu[mt]'") from None
        if required and not self._key():
            raise BuildError(f"the {self.provider} provider needs an API key",
                             hint=f"set the environment variable {env} (keys are read from the environment only)")
        missing = [lang for lang in languages if not self.covers(lang)]
        if missing:
            raise BuildError(f"provider {self.provider} does not support language(s) {', '.join(missing)}",
                             hint="use another provider or the hf engine for these languages")

    def _scrub(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    def _client(self, src: str, tgt: str):
        import deep_translator

        cls = getattr(deep_translator, PROVIDERS[self.provider][0])
        kwargs = {"source": self._code(src), "target": self._code(tgt)}
        key = self._key()
        if key:
            kwargs["api_key"] = key
        if self.provider == "libre":
            kwargs["custom_url"] = self.config.provider_url or "https://libretranslate.com/"
            # deep-translator insists on a key; self-hosted servers without keys ignore it.
            kwargs.setdefault("api_key", "none")
        if self.provider == "deepl":
            kwargs["use_free_api"] = key is not None and key.endswith(":fx")
        try:
            return cls(**kwargs)
        except Exception as e:
            raise BuildError(f"could not set up the {self.provider} provider for {src}->{tgt}: "
                             f"{type(e).__name__}: {self._scrub(str(e))[:300]}",
                             hint="check the language codes and the API key environment variable") from None

    def _throttle(self) -> None:
        gap = 1.0 / self.config.requests_per_second
        wait = self._last + gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()

    @staticmethod
    def _transient(exc: Exception) -> bool:
        import requests
        from deep_translator import exceptions as dx

        if isinstance(exc, (requests.Timeout, requests.ConnectionError, dx.TooManyRequests)):
            return True
        if isinstance(exc, dx.ServerException):
            # deep-translator keeps only a message per status code; map it back.
            by_message = {m: c for c, m in dx.ServerException.errors.items()}
            code = by_message.get(exc.args[0] if exc.args else None)
            return code in (429, 500, 502, 503, 504) or code is None
        return isinstance(exc, dx.RequestError)

    def translate(self, texts: list[str], *, src: str, tgt: str) -> list[str | None]:
        client = self._client(src, tgt)
        out: list[str | None] = []
        for text in texts:
            out.append(self._one(client, text))
        return out

    def _one(self, client, text: str) -> str:
        cfg = self.config
        attempt = 0
        while True:
            self._throttle()
            try:
                with default_timeout(cfg.timeout):
                    result = client.translate(text)
                if not isinstance(result, str) or not result.strip():
                    raise BuildError(f"{self.provider} returned an empty translation")
                return result
            except BuildError:
                raise
            except Exception as e:  # provider errors become clear messages, never with the key
                if self._transient(e) and attempt < cfg.retries:
                    time.sleep(min(30.0, 0.5 * 2 ** attempt))
                    attempt += 1
                    continue
                kind = type(e).__name__
                detail = self._scrub(str(e))[:300]
                if self._transient(e):
                    raise BuildError(
                        f"{self.provider} did not answer after {attempt + 1} tries "
                        f"(timeout {cfg.timeout:g}s per request): {kind}: {detail}",
                        hint="check the network or translate.provider_url, raise translate.timeout / "
                             "translate.retries, or use the hf engine") from None
                raise BuildError(f"{self.provider} refused the request: {kind}: {detail}",
                                 hint="check the API key environment variable and the language codes") from None
