"""Faust's app with public hooks in place of the private ones convoy-stream overrides.

Faust builds its conductor and its consumer in `App._new_conductor` / `App._new_consumer`,
and at a revoke waits for its streams in `App._consumer_wait_empty`. A subclass of `App`
overrides `new_conductor`, `on_consumer_created` and `on_streams_empty` instead, and Faust's
behaviour is otherwise unchanged.
"""

from __future__ import annotations

from typing import Any

import faust


class App(faust.App):
    """`faust.App` whose conductor, new consumer and revoke wait are reached through public hooks."""

    def new_conductor(self) -> Any:
        """The conductor the app routes fetched messages with (Faust's own by default)."""
        return super()._new_conductor()

    def on_consumer_created(self, consumer: Any) -> None:
        """Faust just built its consumer: before its first assignment."""

    async def on_streams_empty(self) -> None:
        """A revoke: Faust has waited for its streams' messages in hand; wait for ours."""

    def _new_conductor(self) -> Any:
        return self.new_conductor()

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        self.on_consumer_created(consumer)
        return consumer

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        await super()._consumer_wait_empty(consumer, logger)
        await self.on_streams_empty()
