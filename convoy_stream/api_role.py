"""The API role: every HTTP route, no agents, no tables (`convoy-stream api`).

An API process publishes what it accepts to the ingest topic exactly as a worker does
(`publisher.py`: 2xx only once Kafka acknowledged with acks=all), follows the config topic
(`tables/config.py`), and answers lookups by asking the workers that own the keys
(`tables/queries.py`). It is not a member of the workers' consumer group: it learns who owns
what by describing the group and decoding the assignment Faust's leader gave every member
(`faust_ext/group_assignment.py`), every `REFRESH_INTERVAL` and at once when a lookup finds no
owner. While no worker owns a key, or the group is rebalancing, lookups answer 503 with
Retry-After, never a wrong "not found". Several API processes share one port (SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Callable

from aiohttp import ClientSession, web
from aiokafka.admin import AIOKafkaAdminClient

from tables.config import ConfigStore

from .faust_ext.group_assignment import PROTOCOL, Distribution, changelog_distribution
from .kafka_connection import KafkaConnection
from .publisher import Publisher
from .settings import Settings

log = logging.getLogger(__name__)

#: How often the group's assignment is read again (seconds); a lookup that finds no owner
#: asks for a read at once, at most every `MIN_REFRESH_GAP`.
REFRESH_INTERVAL = 1.0
MIN_REFRESH_GAP = 0.2


def distribution_of(groups: list[Any], group_id: str) -> Distribution:
    """The changelog distribution of `group_id` in `describe_consumer_groups`' raw answers.

    Only a stable group's assignment is current; between generations there is none ({}).
    """
    for response in groups:
        for group in response.groups:
            error_code, name, state, _protocol_type, protocol, members = group[:6]
            if name != group_id or error_code != 0 or state != "Stable" or protocol != PROTOCOL:
                continue
            for member in members:
                found = changelog_distribution(member[4])
                if found:
                    return found
    return {}


class PortUnavailable(Exception):
    """The API port cannot be bound (one line for the command line)."""


class GroupRouter:
    """`table_metadata(table)` as Faust's router answers it inside a worker, for a process outside the group."""

    def __init__(self, kafka: KafkaConnection, group_id: str, changelogs: dict[str, str]) -> None:
        self.kafka = kafka
        self.group_id = group_id
        #: table name -> its changelog topic (`app.tables[name].changelog_topic`).
        self.changelogs = changelogs
        self.distribution: Distribution = {}
        self._admin: AIOKafkaAdminClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self._last_read = 0.0

    def table_metadata(self, table: str) -> dict[str, dict[str, list[int]]]:
        topic = self.changelogs[table]
        found = {url: {topic: parts[topic]} for url, parts in self.distribution.items() if parts.get(topic)}
        if not found:
            self._wanted.set()  # no owner known: read the group again now
        return found

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(**self.kafka.client_options())
        await self._admin.start()
        await self.refresh()
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._admin is not None:
            await self._admin.close()

    async def refresh(self) -> None:
        """Read the group's current assignment; on any error keep none (lookups answer 503)."""
        assert self._admin is not None
        self._last_read = asyncio.get_running_loop().time()
        try:
            self.distribution = distribution_of(await self._admin.describe_consumer_groups([self.group_id]),
                                                self.group_id)
        except Exception as exc:  # Kafka unavailable, coordinator moving, undecodable bytes
            log.warning("consumer group %s not described: %r", self.group_id, exc)
            self.distribution = {}

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._wanted.wait(), REFRESH_INTERVAL)
            except asyncio.TimeoutError:
                pass
            self._wanted.clear()
            gap = MIN_REFRESH_GAP - (loop.time() - self._last_read)
            if gap > 0:
                await asyncio.sleep(gap)
            await self.refresh()


class _NoConsumer:
    """An API process consumes no partitions: no ingest lag to report (`web/metrics.ingest_lag`)."""

    def assignment(self) -> set[Any]:
        return set()


class _Liveness:
    def cause(self) -> str | None:
        return None


class ApiNode:
    """What `web/` needs of a worker (`web.context.Worker`), without agents or tables."""

    event_tables: Any = None
    dead_letters: Any = None
    request_log: Any = None
    rebalancing = False
    #: Positive: `/health` reports partitions assigned, as an API process needs none to accept events.
    consumer_generation_id = 1

    def __init__(self, settings: Settings, router: GroupRouter) -> None:
        self.settings = settings
        self.router = router
        self.publisher = Publisher(
            settings.kafka, ingest_topic=f"{settings.app_id}-ingest",
            dead_letter_topic=f"{settings.app_id}-dead-letters", partitions=settings.partitions,
            timeout=settings.publish_timeout,
        )
        self.config_store = ConfigStore(settings.kafka, f"{settings.app_id}-config")
        self.publisher.config_position = lambda: self.config_store.position
        self.liveness = _Liveness()
        self.consumer = _NoConsumer()
        self._stopping = False
        self._http: ClientSession | None = None

    @property
    def should_stop(self) -> bool:
        return self._stopping

    @property
    def http_client(self) -> ClientSession:
        assert self._http is not None, "API process not started"
        return self._http

    def active_keys(self) -> Callable[[str], bool]:
        return lambda key: False  # owns no partition: every question goes to a worker

    async def start(self) -> None:
        self._http = ClientSession()
        await self.publisher.start()
        await self.config_store.start(self.publisher.producer)
        await self.router.start()

    def begin_stop(self) -> None:
        """From now on, a request that fails because something is closing answers 503 (`web/failures.py`)."""
        self._stopping = True

    async def stop(self) -> None:
        self.begin_stop()
        await self.router.stop()
        await self.config_store.stop()
        await self.publisher.stop()
        if self._http is not None:
            await self._http.close()


def web_application(node: ApiNode) -> web.Application:
    """The worker's routes and middlewares, with the worker's aiohttp options (`app.create_app`)."""
    from .web.routes import install

    web_app = web.Application(client_max_size=8 * 1024 * 1024,
                              handler_args={"keepalive_timeout": node.settings.keepalive_timeout})
    install(node, web_app)
    return web_app


async def serve(settings: Settings, changelogs: dict[str, str], *, stop: asyncio.Event | None = None) -> None:
    """One API process: serve on the shared port until SIGTERM/SIGINT (or `stop`), then stop cleanly.

    In-flight requests get `shutdown_timeout` to finish; requests after the stop answer 503.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    node = ApiNode(settings, GroupRouter(settings.kafka, settings.app_id, changelogs))
    await node.start()
    runner = web.AppRunner(web_application(node), access_log=None, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.bind or settings.host, settings.port, reuse_port=True)
        try:
            await site.start()
        except OSError as exc:  # the port is taken by a process that does not share it
            raise PortUnavailable(f"cannot listen on {settings.bind or settings.host}:{settings.port}: "
                                  f"{exc.strerror or exc}") from None
        await node.config_store.ready.wait()
        print(f"convoy-stream api ready: {settings.base_url} (GET /health)", flush=True)
        await stop.wait()
    finally:
        node.begin_stop()
        await runner.cleanup()
        await node.stop()
