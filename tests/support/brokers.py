"""Session fixtures for the real brokers the bridges talk to: SQS (moto), Pub/Sub (emulator),
RabbitMQ (the machine's server).

Each fixture starts what it needs and stops only what it started. A service that cannot
start makes the test fail with the reason (never skip): a bridge that was not exercised
against its broker is not tested.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, TypeVar

import pytest

T = TypeVar("T")

PUBSUB_EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/lib/rabbitmq/bin"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _log_tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "<no log>"


def _wait_for_port(
    proc: subprocess.Popen[bytes], host: str, port: int, timeout: float, what: str, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before listening:\n{_log_tail(log)}")
        if port_open(host, port):
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not listen on {host}:{port} within {timeout:.0f} s:\n{_log_tail(log)}")


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything in its group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # children (the JVM) may outlive the leader; never leave them behind
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout=timeout)


_SHARED: dict[str, list[Any]] = {}


def _shared(name: str, make: Callable[[], ContextManager[T]]) -> Iterator[T]:
    """One instance of a service per test session, however the fixture is imported.

    pytest keeps one session fixture *per place it is defined or imported*: a fixture
    imported both in ``tests/conftest.py`` and in a test module would start a second server.
    The first fixture instance starts the service, later ones share it, the last one to be
    torn down stops it.
    """
    entry = _SHARED.get(name)
    if entry is None:
        manager = make()
        value = manager.__enter__()
        entry = _SHARED[name] = [value, 0, manager]
    entry[1] += 1
    try:
        yield entry[0]
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del _SHARED[name]
            entry[2].__exit__(None, None, None)


# --------------------------------------------------------------------------- SQS (moto)


@pytest.fixture(scope="session")
def sqs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto SQS server on a loopback port; yields its endpoint URL."""
    yield from _shared("sqs_server", lambda: _moto_server(tmp_path_factory))


@contextlib.contextmanager
def _moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(proc, "127.0.0.1", port, 30, "moto server", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_group(proc)


# --------------------------------------------------------------------------- Pub/Sub emulator


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Google Pub/Sub emulator (its own script, not gcloud); yields ``host:port``.

    Started in its own process group: through ``gcloud beta emulators`` the JVM outlives a
    killed gcloud, so we start the script (which execs java) and kill the whole group.
    """
    yield from _shared("pubsub_emulator", lambda: _pubsub_emulator(tmp_path_factory))


@contextlib.contextmanager
def _pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PUBSUB_EMULATOR.exists():
        pytest.fail(
            f"Pub/Sub emulator not found at {PUBSUB_EMULATOR} "
            "(Debian package google-cloud-cli-pubsub-emulator; Java 17 needed)"
        )
    port = free_port()
    data_dir = tmp_path_factory.mktemp("pubsub-emulator")
    log = data_dir / "emulator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,
        )
    try:
        _wait_for_port(proc, "127.0.0.1", port, 60, "Pub/Sub emulator", log)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_group(proc)


# --------------------------------------------------------------------------- RabbitMQ


@dataclass
class RabbitMQ:
    """The machine's RabbitMQ node as the tests see it."""

    host: str = "127.0.0.1"
    port: int = 5672
    user: str = "guest"
    password: str = "guest"

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@{self.host}:{self.port}/"

    async def restart(self, down_seconds: float = 1.0) -> None:
        """Restart the broker under the clients' feet.

        ``rabbitmqctl stop_app`` stops the rabbit application, which closes every client
        connection (the same as a broker restart for a client) while the Erlang node stays
        up, so ``start_app`` is back in about a second instead of the ~10 s of a full boot.
        Durable queues and persistent messages survive, un-acked deliveries are requeued.
        """
        await _rabbitmqctl("stop_app")
        await asyncio.sleep(down_seconds)
        await _rabbitmqctl("start_app")
        await _rabbitmqctl("await_startup", timeout=60)


async def _rabbitmqctl(*args: str, timeout: float = 60) -> str:
    ctl = shutil.which("rabbitmqctl", path=SBIN_PATH)
    assert ctl, "rabbitmqctl not found"
    proc = await asyncio.create_subprocess_exec(
        ctl, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {output.decode(errors='replace')}")
    return output.decode(errors="replace")


def _amqp_works(node: RabbitMQ) -> bool:
    """A real AMQP handshake (the port opens before the node accepts logins)."""
    import aio_pika

    async def attempt() -> bool:
        try:
            connection = await aio_pika.connect(node.url, timeout=3)
        except Exception:
            return False
        await connection.close()
        return True

    # In a thread of its own: asyncio.run must not touch the test session's event loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, attempt()).result()


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    """RabbitMQ on 127.0.0.1:5672 (guest/guest), started with ``rabbitmq-server -detached`` when
    it is not running, and stopped with ``rabbitmqctl stop`` only if this fixture started it."""
    yield from _shared("rabbitmq", _rabbitmq_node)


@contextlib.contextmanager
def _rabbitmq_node() -> Iterator[RabbitMQ]:
    node = RabbitMQ()
    server = shutil.which("rabbitmq-server", path=SBIN_PATH)
    ctl = shutil.which("rabbitmqctl", path=SBIN_PATH)
    if not server or not ctl:
        pytest.fail(
            "rabbitmq-server is not installed: run `scripts/install-services.sh` as root "
            "(apt-get install rabbitmq-server)"
        )
    started = False
    if not _amqp_works(node):
        if port_open(node.host, node.port):
            pytest.fail("something listens on 127.0.0.1:5672 but does not accept guest/guest")
        log = Path(tempfile.gettempdir()) / "convoy-stream-rabbitmq-start.log"
        with open(log, "wb") as out:
            result = subprocess.run(
                [server, "-detached"], stdout=out, stderr=subprocess.STDOUT, cwd="/", timeout=60
            )
        if result.returncode != 0:
            pytest.fail(f"rabbitmq-server -detached failed ({result.returncode}):\n{_log_tail(log)}")
        started = True
        deadline = time.monotonic() + 60
        while not _amqp_works(node):
            if time.monotonic() > deadline:
                subprocess.run([ctl, "stop"], capture_output=True, timeout=60)
                pytest.fail("RabbitMQ did not accept connections within 60 s of starting")
            time.sleep(0.5)
    try:
        yield node
    finally:
        if started:
            subprocess.run([ctl, "stop"], capture_output=True, timeout=120)


def amqp_publish_raw(
    node: RabbitMQ,
    exchange: str,
    routing_key: str,
    body: bytes,
    *,
    headers: dict[str, object] | None = None,
    message_id: str | None = None,
) -> None:
    """Publish one persistent message speaking AMQP 0-9-1 directly (frames from ``pamqp``).

    aio-pika (aiormq) always fills in a random ``message_id``; publishers in other languages
    usually send none, which is the case the bridge's fallback id is for. This bare client
    publishes exactly the properties given. Closing the channel with a handshake guarantees
    the broker has routed the message before we return.
    """
    from pamqp import commands, exceptions, frame, header
    from pamqp import body as content

    sock = socket.create_connection((node.host, node.port), timeout=10)
    buffer = b""

    def send(value: object, channel: int = 0) -> None:
        sock.sendall(frame.marshal(value, channel))  # type: ignore[arg-type]

    def expect(kind: type) -> object:
        nonlocal buffer
        while True:
            try:
                consumed, _, value = frame.unmarshal(buffer)
            except exceptions.UnmarshalingException:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("broker closed the connection")
                buffer += chunk
                continue
            buffer = buffer[consumed:]
            if isinstance(value, kind):
                return value
            if isinstance(value, (commands.Connection.Close, commands.Channel.Close)):
                raise RuntimeError(f"broker refused: {value.reply_code} {value.reply_text}")

    try:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        expect(commands.Connection.Start)
        send(
            commands.Connection.StartOk(
                client_properties={"product": "convoy-stream tests"},
                mechanism="PLAIN",
                response=f"\0{node.user}\0{node.password}",
                locale="en_US",
            )
        )
        tune = expect(commands.Connection.Tune)
        send(commands.Connection.TuneOk(channel_max=1, frame_max=tune.frame_max, heartbeat=0))  # type: ignore[attr-defined]
        send(commands.Connection.Open(virtual_host="/"))
        expect(commands.Connection.OpenOk)
        send(commands.Channel.Open(), 1)
        expect(commands.Channel.OpenOk)
        properties = commands.Basic.Properties(delivery_mode=2, headers=headers, message_id=message_id)
        send(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), 1)
        send(header.ContentHeader(0, len(body), properties), 1)
        send(content.ContentBody(body), 1)
        send(commands.Channel.Close(reply_code=200, reply_text="done", class_id=0, method_id=0), 1)
        expect(commands.Channel.CloseOk)
        send(commands.Connection.Close(reply_code=200, reply_text="done", class_id=0, method_id=0))
        expect(commands.Connection.CloseOk)
    finally:
        sock.close()
