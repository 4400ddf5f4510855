"""The local executor: the engine in this process, one chunk after another."""

from __future__ import annotations

from typing import Iterator

from refuseu.faults import checkpoint


class LocalExecutor:
    name = "local"

    def map_chunks(self, engine, items: list, *, call, chunk: int, **kwargs) -> Iterator[tuple[int, list]]:
        for start in range(0, len(items), chunk):
            yield start, call.run(engine, items[start:start + chunk], **kwargs)
            checkpoint("items:chunk")  # reached once the caller has committed this chunk

    def close(self) -> None:
        pass
