"""An in-memory connector for engine tests: it can list names no real disk would allow."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from core.connectors.base import ConnectorError, Entry, Fatal, Features, NotFound


class MemoryConnector:
    """A tree of folders and files held in dicts; read-only is enough for a source."""

    features = Features(mtime_precision=1e-6, can_set_mtime=True)

    def __init__(self, tree: dict[str, object]) -> None:
        # tree: {name: bytes | dict}; names may be anything, even '..' or 'a/b'
        self.tree = tree
        self.reads: list[str] = []
        self.unreadable: set[str] = set()  # paths whose read fails, as a bad disk would
        self.fatal_reads = False  # every read fails: the disk itself is gone

    def _folder(self, path: str) -> dict[str, object]:
        node: object = self.tree
        for segment in filter(None, path.split("/")):
            if not isinstance(node, dict) or segment not in node:
                raise NotFound(path)
            node = node[segment]
        if not isinstance(node, dict):
            raise NotFound(path)
        return node

    async def list_dir(self, path: str) -> list[Entry]:
        return [Entry(name, is_dir=True) if isinstance(value, dict)
                else Entry(name, is_dir=False, size=len(value), mtime=1_700_000_000.0)
                for name, value in self._folder(path).items()]

    async def stat(self, path: str) -> Entry:
        self._folder(path)
        return Entry(path.rpartition("/")[2], is_dir=True)

    async def connect(self) -> None:
        pass  # nothing to start: features are known from the start

    async def read(self, path: str, entry: Entry) -> AsyncIterator[bytes]:
        self.reads.append(path)
        if self.fatal_reads:
            raise Fatal("the source disk is gone")
        if path in self.unreadable:
            raise ConnectorError(f"{path}: input/output error")
        parent, _, _ = path.rpartition("/")
        yield self._folder(parent)[entry.name]  # type: ignore[misc]

    async def write(self, path: str, chunks: AsyncIterable[bytes], **kw: object) -> Entry:
        raise AssertionError("the source is never written")

    async def mkdir(self, path: str) -> Entry:
        raise AssertionError("the source is never written")

    async def close(self) -> None:
        pass
