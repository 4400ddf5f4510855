"""The Ray executor: the items a model stage still needs run on a pool of Ray actors, each
holding the engine with its model loaded.

- One task is one chunk of items (the chunk the local executor would hand the engine), so
  every engine call sees the same batch on either executor: batch composition can move the
  last digits of model outputs, and a release must not move.
- Each actor rebuilds the engine from its :class:`~refuseu.executors.EngineSpec` (class and
  plain settings; the model folder must be reachable from the worker) and loads the model
  when the first chunk for a setting (e.g. a language pair) arrives, then keeps it.
  ``num_gpus`` per actor (default 1 when the cluster has GPUs: one actor per GPU), else a CPU
  pool of ``num_cpus`` each.
- The actors are kept for the whole build: a streamed build calls once per chunk of rows and
  language, and a model loads once per actor for the whole stage, not once per call. A chunk
  for another engine (the next stage) makes the actor drop the engine it holds and its model
  (freeing its GPU) before it builds the next one, so the worker processes and their imports
  are paid once per build.
- Pool size: ``executor.concurrency``, else the cluster's GPUs (or CPUs) divided by what
  one actor takes; actors start as a call has chunks for them.
- Outputs stream back to the driver as chunks finish; the caller writes each to the item
  cache before the next one is read, so a driver killed mid-stage loses only the chunks in
  flight. An actor that dies is restarted (``max_restarts``) and its chunk retried
  (``max_task_retries``).

(Ray Data's ``map_batches`` starts an actor pool per dataset, and so per call: with a streamed
build that is one process start and model load per chunk of rows and language. Ray's actors
are used directly.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from typing import Iterator

from refuseu.config import ExecutorConfig
from refuseu.errors import BuildError
from refuseu.faults import checkpoint

# Settings that decide where a worker finds models; passed on so a remote worker resolves
# model ids offline (or not) the way the driver does.
_FORWARD_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "HF_HUB_CACHE",
                "TRANSFORMERS_CACHE", "HF_ENDPOINT")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BuildError("the ray executor needs Ray", hint="pip install 'refuseu[ray]', or use "
                                                                 "--executor local") from None
    return ray


class EngineActor:
    """A pool member: a worker process that holds one engine at a time. It builds the engine a
    chunk names (once), loads its model for the settings the chunk comes with (once per setting),
    and runs chunks through it; a chunk for another engine (the next stage) drops this one and
    its model first, so the process, its imports and its GPU serve the whole build."""

    def __init__(self):
        self.key: str | None = None
        self.engine = None
        self.call = None
        self.loaded: set[str] = set()
        self.error = None

    def _use(self, key: str, engine: tuple) -> None:
        if key == self.key:
            return
        import gc

        from refuseu.errors import RefuseuError

        self.engine = None  # the previous engine and its model go before the next one loads
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        spec, self.call = engine
        self.key, self.loaded, self.error = key, set(), None
        try:
            self.engine = spec.build()
        except RefuseuError as e:  # reported with the first chunk
            self.error = e

    def run(self, key: str, engine: tuple, start: int, payload: str, kwargs: str) -> tuple[int, str]:
        from refuseu.errors import RefuseuError

        self._use(key, engine)
        settings = json.loads(kwargs)
        if self.error is None:
            try:
                if kwargs not in self.loaded:
                    if self.call.load is not None:
                        self.call.load(self.engine, **settings)  # the model loads here, once per setting
                    self.loaded.add(kwargs)
                return start, json.dumps(list(self.call.run(self.engine, json.loads(payload), **settings)))
            except RefuseuError as e:  # e.g. a model missing on this node
                self.error = e
        # The project's own errors travel back as data (their message and fix intact), and are
        # not retried: they say what to fix, not that a worker was lost.
        e = self.error
        return start, json.dumps({"error": type(e).__name__, "message": e.message, "hint": e.hint})


class RayExecutor:
    name = "ray"

    def __init__(self, config: ExecutorConfig, *, address: str | None = None):
        self.config = config
        self.ray = _import_ray()
        self._started = False
        self.computed_remote = 0  # chunks that came back from the pool (for tests and reports)
        self._actors: list = []  # the pool, kept across calls and stages
        if not self.ray.is_initialized():
            addr = address or config.address or os.environ.get("RAY_ADDRESS") or None
            _check_reachable(addr)
            try:
                self.ray.init(address=addr, include_dashboard=False, log_to_driver=False,
                              logging_level="ERROR", configure_logging=True)
            except (ConnectionError, ValueError, RuntimeError) as e:
                where = addr or "a new local cluster"
                raise BuildError(f"could not join Ray at {where}: {str(e).splitlines()[0] if str(e) else e}",
                                 hint="start the head with `ray start --head` and give its address with "
                                      "--ray-address / executor.address / RAY_ADDRESS") from None
            self._started = True

    # sizing -----------------------------------------------------------------------
    def resources(self) -> tuple[int, float]:
        """(actors, GPUs per actor) for this cluster and config."""
        total = self.ray.cluster_resources()
        gpus = float(total.get("GPU", 0))
        per_gpu = self.config.num_gpus if self.config.num_gpus is not None else (1.0 if gpus >= 1 else 0.0)
        if self.config.concurrency:
            n = self.config.concurrency
        elif per_gpu > 0:
            n = int(gpus // per_gpu)
        else:
            n = int(float(total.get("CPU", 1)) // self.config.num_cpus)
        return max(1, n), per_gpu

    # the pool ---------------------------------------------------------------------
    def _pool(self, wanted: int) -> list:
        """The pool's actors, started up to ``wanted`` (and the pool's size)."""
        if len(self._actors) >= wanted:  # (no question to the cluster on every call)
            return self._actors[:max(1, wanted)]
        size, per_gpu = self.resources()
        if len(self._actors) < min(size, wanted):
            options = {"num_cpus": self.config.num_cpus, "num_gpus": per_gpu,
                       "max_restarts": self.config.max_restarts, "max_task_retries": self.config.max_task_retries}
            env = {k: os.environ[k] for k in _FORWARD_ENV if k in os.environ}
            if env:
                options["runtime_env"] = {"env_vars": env}
            remote = self.ray.remote(EngineActor).options(**options)
            while len(self._actors) < min(size, wanted):
                self._actors.append(remote.remote())
        return self._actors[:max(1, min(len(self._actors), wanted))]

    def _end_pool(self) -> None:
        for actor in self._actors:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - gone already
                pass
        self._actors = []

    # work -------------------------------------------------------------------------
    def map_chunks(self, engine, items: list, *, call, chunk: int, **kwargs) -> Iterator[tuple[int, list]]:
        from refuseu.executors import engine_spec
        from refuseu.executors.local import LocalExecutor

        spec = engine_spec(engine)
        if spec is None or not items:  # cheap CPU engines (and nothing to do) stay here
            yield from LocalExecutor().map_chunks(engine, items, call=call, chunk=chunk, **kwargs)
            return
        ray = self.ray
        starts = list(range(0, len(items), chunk))
        settings = json.dumps(kwargs, sort_keys=True)
        actors = self._pool(len(starts))
        from ray import cloudpickle

        # The engine's settings go to the object store once per call; every chunk names them.
        key = hashlib.sha256(cloudpickle.dumps((spec, call))).hexdigest()
        engine_ref = ray.put((spec, call))
        idle, pending, todo = list(actors), {}, iter(starts)
        finished = False

        def submit() -> None:
            while idle:
                s = next(todo, None)
                if s is None:
                    return
                actor = idle.pop()
                ref = actor.run.remote(key, engine_ref, s, json.dumps(items[s:s + chunk], ensure_ascii=False),
                                       settings)
                pending[ref] = actor

        try:
            submit()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                idle.append(pending.pop(ready[0]))
                start, outputs = ray.get(ready[0])
                submit()
                outputs = json.loads(outputs)  # (a retried chunk answers through its first task's ref, once)
                if isinstance(outputs, dict):
                    raise _project_error(outputs)
                if len(outputs) != min(chunk, len(items) - start):
                    raise BuildError(f"the {getattr(engine, 'name', 'model')} engine returned {len(outputs)} "
                                     f"outputs for a chunk of {min(chunk, len(items) - start)} items on Ray")
                self.computed_remote += 1
                yield start, outputs
                checkpoint("items:chunk")  # reached once the caller has committed this chunk
            finished = True
        except ray.exceptions.RayError as e:
            raise _remote_error(e) from None
        finally:
            if not finished:  # chunks may still be in flight: these actors are not reused
                self._end_pool()

    def close(self) -> None:
        if self.ray.is_initialized():
            self._end_pool()
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
            self._started = False


def _check_reachable(addr: str | None, *, timeout: float = 10.0) -> None:
    """Fail in seconds, naming the address, where Ray itself would retry for minutes."""
    if not addr or addr in ("auto", "local"):
        return
    host, _, port = addr.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return
    import socket

    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise BuildError(f"no Ray cluster answers at {addr} ({e.strerror or e})",
                         hint="start the head with `ray start --head` and give its address with --ray-address / "
                              "executor.address / RAY_ADDRESS") from None


def _project_error(info: dict) -> Exception:
    """A project error raised on a worker, rebuilt on the driver with its class, message and fix."""
    from refuseu import errors

    cls = getattr(errors, str(info.get("error")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.RefuseuError)):
        cls = errors.BuildError
    err = cls.__new__(cls)
    errors.RefuseuError.__init__(err, info.get("message") or "a model stage failed on the Ray cluster",
                                 hint=info.get("hint"))
    return err


def _remote_error(err: Exception) -> Exception:
    """A worker's failure as one line: the original exception's own message where one of
    the project's errors (a missing model, a bad setting) crossed the cluster."""
    from refuseu.errors import RefuseuError

    cause = err
    for _ in range(8):
        nxt = getattr(cause, "cause", None) or cause.__cause__
        if nxt is None or nxt is cause:
            break
        cause = nxt
    if isinstance(cause, RefuseuError):
        return cause
    # The worker's own exception line ("ValueError: ...") from the traceback Ray carries.
    found = [m.group(0).strip() for m in re.finditer(r"^\s*[\w.]*(?:Error|Exception): .+$", str(err), re.M)
             if "UserCodeException" not in m.group(0) and "RayTaskError" not in m.group(0)]
    last = found[-1] if found else type(err).__name__
    if os.environ.get("REFUSEU_DEBUG"):
        print(str(err), file=sys.stderr)
    return BuildError(f"a model stage failed on the Ray cluster: {last[:300]}",
                      hint="set REFUSEU_DEBUG=1 for the worker's traceback; finished items are in the item cache")
