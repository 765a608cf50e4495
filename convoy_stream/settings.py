"""Runtime settings, read once from the environment.

Everything a deployment tunes lives here so that the rest of the code takes a
`Settings` and never reads `os.environ` itself (tests build their own).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from .durations import parse_go_duration
from .kafka_connection import KafkaConnection, SettingError
from .limits import DEFAULT_MAX_BRIDGE_WORKERS, DEFAULT_MAX_SOURCE_WORKERS


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value else default
    except ValueError:
        raise SettingError(f"{name}={value!r} is not a whole number") from None


def _env_positive_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"convoy-stream: {name} must be a positive whole number, not {value!r}")
    return int(value)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise SettingError(f"{name}={value!r} is not a number") from None


def _env_duration(name: str, default: float) -> float:
    """Seconds, as a number (`30`, `2.5`) or a Go duration (`30s`, `1m30s`); more than zero."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parse_go_duration(value)
        except ValueError:
            seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise SettingError(f"{name}={value!r} is not a duration of more than zero (seconds, or Go's 30s, 1m30s)")
    return seconds


@dataclass(frozen=True)
class Settings:
    port: int = 5005
    #: How other workers reach this one (its canonical URL host).
    host: str = "127.0.0.1"
    #: Listen address; defaults to `host`. Set 0.0.0.0 in containers.
    bind: str = ""
    kafka_bootstrap: str = "127.0.0.1:9092"
    #: TLS and SASL of the app's own cluster (`kafka_connection.py`): every Kafka client of the
    #: process connects with it. Its bootstrap is always `kafka_bootstrap`.
    kafka: KafkaConnection = field(default_factory=KafkaConnection)
    #: Replicas of every topic the app creates; 0: the smaller of 3 and the cluster's brokers.
    replication_factor: int = 0
    #: `min.insync.replicas` of every topic the app creates; 0: replication factor - 1, at least 1.
    min_insync_replicas: int = 0
    data_dir: Path = Path(".data")
    admin_token: str = field(default="", repr=False)  # a secret: never in a repr or a log
    app_id: str = "convoy-stream"
    partitions: int = 8
    #: Standby copies of each table partition kept warm on other workers (Faust's
    #: `table_standby_replicas`), so a partition that moves is served without replaying its
    #: changelog. A standby applies every changelog record the active worker writes, so it
    #: costs CPU (docs/mechanisms.md#standby-replicas).
    standby_replicas: int = 1
    public_url: str = ""
    #: Kafka acknowledgement wait before an HTTP request answers 503.
    publish_timeout: float = 10.0
    #: Consumer-group timings: short by default so a worker is ready in seconds
    #: (docs/mechanisms.md#group-timeouts); production may raise them.
    session_timeout: float = 6.0
    heartbeat_interval: float = 0.5
    rebalance_timeout: float = 8.0
    #: Instance ingest rate limit per worker in events/s (Convoy's `instance_ingest_rate`);
    #: 0 turns it off. Applies to `/ingest/*` and the REST event-create routes.
    ingest_rate: float = 0.0
    #: Seconds a request body may go without sending a byte before the answer is 408.
    body_read_timeout: float = 10.0
    #: Seconds the whole request body may take to arrive before the answer is 408.
    body_total_timeout: float = 60.0
    #: Idle keep-alive timeout; aiohttp also closes a connection that has not sent
    #: complete request headers within this time (it has no separate header timeout).
    keepalive_timeout: float = 75.0
    run_bridges: bool = True
    #: Bridge consumers one broker source may run (`pub_sub.workers` above it is a 400).
    max_source_workers: int = DEFAULT_MAX_SOURCE_WORKERS
    #: Bridge consumers this instance runs for all sources together: a create or update
    #: beyond it is a 400, and sources stored before the limit get what is left, oldest first.
    max_bridge_workers: int = DEFAULT_MAX_BRIDGE_WORKERS
    #: Endpoint URLs and broker hosts may point at private, loopback and metadata addresses
    #: (`netpolicy.py`): for one-machine setups (`make run`, the tests), never in production.
    allow_private_networks: bool = False
    #: Seconds between retention sweeps (each worker sweeps its own partitions).
    retention_sweep_interval: float = 60.0
    log_level: str = "warning"
    #: Seconds a worker with a dead part (a crashed agent or service, a stopped fetcher)
    #: answers 503 on /health before it exits with status 1 (`liveness.py`).
    unhealthy_exit_after: float = 10.0
    #: Seconds the ingest commits may stand still while records wait and Kafka answers before
    #: the pipeline counts as stalled (`liveness.py`).
    commit_stall_after: float = 30.0
    #: Seconds a stopping worker (SIGTERM) may take before it exits with status 1 (`shutdown.py`).
    shutdown_timeout: float = 10.0
    #: Tenants' scripts (body/header functions, test_function): see `transforms.ScriptLimits`.
    script_timeout_ms: int = 200
    script_max_memory: int = 64 * 1024 * 1024
    script_max_output: int = 64 * 1024
    script_runners: int = 2
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kafka.bootstrap != self.kafka_bootstrap:
            object.__setattr__(self, "kafka", replace(self.kafka, bootstrap=self.kafka_bootstrap))

    @property
    def base_url(self) -> str:
        """The URL other workers and providers use to reach this worker."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        values: dict[str, object] = dict(
            port=_env_int("CONVOY_STREAM_PORT", 5005),
            host=os.environ.get("CONVOY_STREAM_HOST", "127.0.0.1"),
            bind=os.environ.get("CONVOY_STREAM_BIND", ""),
            kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            replication_factor=_env_int("CONVOY_STREAM_REPLICATION_FACTOR", 0),
            min_insync_replicas=_env_int("CONVOY_STREAM_MIN_INSYNC_REPLICAS", 0),
            data_dir=Path(os.environ.get("CONVOY_STREAM_DATA_DIR", ".data")),
            admin_token=os.environ.get("CONVOY_STREAM_ADMIN_TOKEN", ""),
            app_id=os.environ.get("CONVOY_STREAM_APP_ID", "convoy-stream"),
            partitions=_env_int("CONVOY_STREAM_PARTITIONS", 8),
            standby_replicas=_env_int("CONVOY_STREAM_STANDBY_REPLICAS", 1),
            public_url=os.environ.get("CONVOY_STREAM_PUBLIC_URL", ""),
            publish_timeout=_env_float("CONVOY_STREAM_PUBLISH_TIMEOUT", 10.0),
            session_timeout=_env_float("CONVOY_STREAM_SESSION_TIMEOUT", 6.0),
            heartbeat_interval=_env_float("CONVOY_STREAM_HEARTBEAT_INTERVAL", 0.5),
            rebalance_timeout=_env_float("CONVOY_STREAM_REBALANCE_TIMEOUT", 8.0),
            ingest_rate=_env_float("CONVOY_STREAM_INGEST_RATE", 0.0),
            body_read_timeout=_env_float("CONVOY_STREAM_BODY_READ_TIMEOUT", 10.0),
            body_total_timeout=_env_float("CONVOY_STREAM_BODY_TIMEOUT", 60.0),
            keepalive_timeout=_env_float("CONVOY_STREAM_KEEPALIVE_TIMEOUT", 75.0),
            retention_sweep_interval=_env_float("CONVOY_STREAM_RETENTION_SWEEP_INTERVAL", 60.0),
            run_bridges=os.environ.get("CONVOY_STREAM_BRIDGES", "1") not in ("0", "false", "no"),
            max_source_workers=_env_int("CONVOY_STREAM_MAX_SOURCE_WORKERS", DEFAULT_MAX_SOURCE_WORKERS),
            max_bridge_workers=_env_int("CONVOY_STREAM_MAX_BRIDGE_WORKERS", DEFAULT_MAX_BRIDGE_WORKERS),
            allow_private_networks=os.environ.get("CONVOY_STREAM_ALLOW_PRIVATE_NETWORKS", "false").lower()
            in ("1", "true", "yes"),
            log_level=os.environ.get("CONVOY_STREAM_LOG_LEVEL", "warning"),
            unhealthy_exit_after=_env_float("CONVOY_STREAM_UNHEALTHY_EXIT_AFTER", 10.0),
            commit_stall_after=_env_duration("CONVOY_STREAM_COMMIT_STALL_AFTER", 30.0),
            shutdown_timeout=_env_duration("CONVOY_STREAM_SHUTDOWN_TIMEOUT", 10.0),
            script_timeout_ms=_env_positive_int("CONVOY_STREAM_SCRIPT_TIMEOUT_MS", 200),
            script_max_memory=_env_positive_int("CONVOY_STREAM_SCRIPT_MAX_MEMORY", 64 * 1024 * 1024),
            script_max_output=_env_positive_int("CONVOY_STREAM_SCRIPT_MAX_OUTPUT", 64 * 1024),
            script_runners=_env_positive_int("CONVOY_STREAM_SCRIPT_RUNNERS", 2),
        )
        values.update(overrides)
        if "kafka" not in values:
            values["kafka"] = KafkaConnection.from_env(bootstrap=str(values["kafka_bootstrap"]))
        settings = cls(**values)  # type: ignore[arg-type]
        if not settings.admin_token:
            settings = _with_admin_token(settings)
        return settings


def _with_admin_token(settings: Settings) -> Settings:
    """Persist a generated admin token in the data dir so restarts keep it."""
    path = settings.data_dir / "admin-token"
    if path.exists():
        token = path.read_text().strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        token = "cs_admin_" + secrets.token_urlsafe(24)
        path.write_text(token + "\n")
        path.chmod(0o600)
    return Settings(**{**settings.__dict__, "admin_token": token})
