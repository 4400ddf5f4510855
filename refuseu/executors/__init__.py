"""Executors: where a model stage computes the items its item cache does not hold yet.

A model stage (translation, QE scoring, response generation, judging) reads its item cache,
then hands the missing items to the active executor in chunks and writes each chunk's
outputs to the cache as it comes back. The executor decides where the engine runs:

- ``local`` (the default): the engine in this process, chunk after chunk. No Ray needed.
- ``ray``: the chunks run as tasks on a pool of Ray actors kept for the build; each actor
  rebuilds the engine from its plain settings (the engine class and its config) and loads
  the model once per stage. See :mod:`refuseu.executors.ray_exec`.

Either way the driver owns the caches and matches every output back to its item by key
(the chunk's start offset), never by arrival order, so the release is the same bytes.

``with use(ExecutorConfig(kind="ray")): build(recipe)`` makes an executor active for the
model stages run inside the block.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from refuseu.config import ExecutorConfig

#: The fault-injection point reached after each chunk's outputs are committed by the caller.
CHUNK_POINT = "items:chunk"


@dataclass(frozen=True)
class EngineCall:
    """What to run on a chunk of items: ``run(engine, items, **kwargs) -> outputs`` (one
    output per item, JSON-able), and optionally ``load(engine, **kwargs)`` that loads the
    model ahead of the first chunk (in a Ray actor's constructor). Both must be
    module-level functions, so a worker imports them by name."""

    run: Callable[..., list]
    load: Callable[..., Any] | None = None


@dataclass(frozen=True)
class EngineSpec:
    """An engine as plain settings: its class and constructor arguments (configs, model ids
    or folders), never a loaded model. ``build()`` makes a fresh, unloaded engine."""

    cls: type
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def build(self):
        return self.cls(*self.args, **self.kwargs)


def engine_spec(engine) -> EngineSpec | None:
    """How to rebuild ``engine`` elsewhere, or None when it must stay in this process.

    An engine may say so itself: ``rebuild_args()`` returns its constructor arguments, and
    ``runs_local = True`` keeps cheap CPU engines (e.g. chrF) out of a cluster. Otherwise an
    engine built from one typed config (``cls(config)``), or a generator (``cls(model,
    config)``), is rebuilt from those."""
    if getattr(engine, "runs_local", False):
        return None
    rebuild = getattr(engine, "rebuild_args", None)
    if callable(rebuild):
        return EngineSpec(type(engine), tuple(rebuild()))
    from pydantic import BaseModel

    config = getattr(engine, "config", None)
    if not isinstance(config, BaseModel):
        return None
    from refuseu.engines.generators.base import GeneratorBase

    if isinstance(engine, GeneratorBase):
        return EngineSpec(type(engine), (engine.model_id, config))
    return EngineSpec(type(engine), (config,))


class Executor(Protocol):
    name: str

    def map_chunks(self, engine, items: list, *, call: EngineCall, chunk: int,
                   **kwargs) -> Iterator[tuple[int, list]]:
        """Run ``call.run(engine, items[s:s + chunk], **kwargs)`` for every chunk start ``s``
        and yield ``(s, outputs)`` as each chunk finishes (in any order). The caller commits
        each chunk before asking for the next one."""
        ...

    def close(self) -> None:
        ...


_lock = threading.Lock()
_stack: list = []


def current():
    """The active executor (the local one unless :func:`use` says otherwise)."""
    with _lock:
        if _stack:
            return _stack[-1]
    from refuseu.executors.local import LocalExecutor

    return LocalExecutor()


def make_executor(config: ExecutorConfig | None = None):
    """The executor ``config`` describes; ``ray`` checks that Ray is installed and joins
    (or starts) the cluster here, before any stage runs."""
    config = config or ExecutorConfig()
    if config.kind == "ray":
        from refuseu.executors.ray_exec import RayExecutor

        return RayExecutor(config)
    from refuseu.executors.local import LocalExecutor

    return LocalExecutor()


def idle_gpus_hint() -> str | None:
    """A line for the user when a build ran its models on the local executor and this node
    has more GPUs than a local model uses (one). Asks torch only when a stage loaded it."""
    torch = sys.modules.get("torch")
    if torch is None or current().name != "local":
        return None
    try:
        n = int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no usable CUDA: nothing to say
        return None
    if n < 2:
        return None
    return (f"{n} GPUs are visible and the local executor runs each model on one of them; "
            f"`--executor ray` (pip install 'refuseu[ray]') runs one actor per GPU for every model stage")


@contextmanager
def use(config: ExecutorConfig | None):
    """Make the executor for ``config`` active inside the block (process-wide: stages may
    run their engines from worker threads)."""
    executor = make_executor(config)
    with _lock:
        _stack.append(executor)
    try:
        yield executor
    finally:
        with _lock:
            _stack.remove(executor)
        executor.close()


__all__ = ["CHUNK_POINT", "EngineCall", "EngineSpec", "Executor", "current", "engine_spec", "idle_gpus_hint",
           "make_executor", "use"]
