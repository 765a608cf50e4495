"""Per-process answers the accept path derives from the config view, dropped on every change.

What an accepted request works out from config alone (which project an API key opens, a
source's verifier and limits) is the same for every request until the config changes, so
it is kept here. The cache registers with the config store (`ConfigStore.on_change`) and
empties itself whenever any entity is created, updated or deleted, on this process or any
other: a revoked key, a deleted project or a changed source takes effect with the next
request, exactly as without the cache. Entries are computed and stored without awaiting,
so no request can store an answer computed from config older than the last change.
"""

from __future__ import annotations

from typing import Any, Callable

#: More distinct keys than this (a scan of made-up keys) empties the cache rather than grow it.
MAX_ENTRIES = 10_000


class AcceptCache:
    def __init__(self, config: Any) -> None:
        self._entries: dict[Any, Any] = {}
        config.on_change(self._changed)

    def _changed(self, kind: str, uid: str, value: Any) -> None:
        self._entries.clear()

    def get(self, key: Any) -> Any:
        return self._entries.get(key)

    def put(self, key: Any, value: Any) -> Any:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = value
        return value

    def get_or(self, key: Any, compute: Callable[[], Any]) -> Any:
        """The entry for `key`, computed (synchronously) and kept on a miss."""
        found = self._entries.get(key)
        if found is None:
            found = self.put(key, compute())
        return found
