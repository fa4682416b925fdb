"""Settings: one class per service with its own env prefix, reading shared fragments (Kafka, auth)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.webhooks.settings import WebhookSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_KEYS_DIR = Path(__file__).resolve().parent / "auth" / "dev_keys"

# Development-only secrets. They are public (they are in this repository): production refuses them.
DEV_CLIENT_SECRET = "dev-secret-change-me"


class Environment(StrEnum):
    development = "development"
    production = "production"


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster and how the outbox relay and consumers behave."""

    model_config = SettingsConfigDict(env_prefix="KAENKHUN_KAFKA_", extra="ignore", populate_by_name=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAENKHUN_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    # Apache Kafka supports the idempotent producer; the local Tansu broker does not.
    # Correctness never depends on it (outbox + inbox do), it only trims duplicates on retry.
    idempotent_producer: bool = False
    # Topics the services create (existing topics are left as they are: Kafka can add partitions to a topic, but
    # that moves keys to other partitions, so their order is no longer guaranteed across the change).
    topic_partitions: int = Field(default=12, ge=1, description=(
        "partitions of each topic: the most consumers of one group that share its work (replicas of a service "
        "beyond it idle)"))
    topic_replication_factor: int = Field(default=1, ge=1, description="copies of each partition, on as many "
                                                                       "brokers (3 on a three-broker cluster)")
    topic_min_insync_replicas: int | None = Field(default=None, ge=1, description=(
        "the topic's `min.insync.replicas`: copies that must hold a record before an `acks=all` write (the "
        "relay's) succeeds (2 of 3 on a three-broker cluster: one broker may be down, none is lost); unset: the "
        "broker's default"))
    relay_batch_size: int = 1000
    # Batches sent ahead while the oldest waits for its acks.
    relay_pipeline_depth: int = Field(default=4, ge=1)
    relay_idle_interval_s: float = 0.2
    # After a short batch, wait this long so the next one gathers more rows (fewer, larger transactions).
    relay_linger_s: float = 0.02
    relay_backoff_initial_s: float = 0.5
    relay_backoff_max_s: float = 30.0
    # Publishing is shared among a service's replicas by outbox shard (shared/bus/shards.py).
    relay_lease_s: float = Field(default=10.0, gt=0, description=(
        "How long a relay holds the outbox shards it publishes without renewing them. A replica that hangs or "
        "is lost has its shards taken over by the others after this (and its events wait that long); a shorter "
        "lease means more heartbeats (one small transaction each)."))
    relay_heartbeat_s: float = Field(default=3.0, gt=0, description=(
        "How often a relay renews its leases, notes itself alive and takes or gives back shards so that the "
        "replicas alive share them evenly; at most a third of `relay_lease_s`."))
    outbox_status_interval_s: float = Field(default=5.0, gt=0, description=(
        "How often the relay holding outbox shard 0 (one replica per service) sends its outbox's pending counts per "
        "topic to `kaenkhun.bus.outbox-status`, where the consuming services read them (freshness, `/v1/bus`); "
        "a status older than 3 intervals counts as unknown."))
    consumer_max_attempts: int = 5
    consumer_retry_backoff_s: float = 0.2
    consumer_batch_size: int = 500
    # How long the broker may hold a fetch open waiting for new records (latency when a topic is quiet).
    consumer_fetch_max_wait_ms: int = 100
    request_timeout_ms: int = 10_000
    # Retention of the bus tables (shared.bus.retention). Set them alike for every service: a consumer's inbox
    # must remember an event as long as its producer's outbox may publish it again.
    outbox_retention_days: float | None = Field(default=None, gt=0, description=(
        "Published outbox rows older than this (by when they were written) are deleted; a row not yet published "
        "never is. Unset (the default): kept for ever, because the outbox is the services' event history: "
        "`kaenkhun rebuild reporting` rebuilds the read models from everything it holds, `kaenkhun replay --since` "
        "and a broker that lost its log publish again what it holds, and `kaenkhun check-consistency` compares "
        "it with the inboxes. Set it only if a rebuild from the last N days is enough."))
    inbox_retention_days: float | None = Field(default=None, gt=0, description=(
        "Inbox rows (the ids of the events a consumer took) older than this are deleted. An id must be kept as "
        "long as the event may be delivered again: as long as any producer's outbox keeps the event (a replay "
        "publishes it again), so at least `outbox_retention_days` + 1 (a consumer may take an event late, a "
        "purge runs once an interval, clocks differ), and as long as the broker keeps it in its log, so at least "
        "`topic_retention_days`. Unset (the default): kept for ever, as the outbox is."))
    topic_retention_days: float = Field(default=14.0, gt=0, description=(
        "How long the broker may keep a record of the topics, and so deliver it again (to a consumer group whose "
        "committed offsets expired, or one `kaenkhun rebuild reporting` rewound to the earliest offset): the "
        "topics' `retention.ms` plus `segment.ms`, as Apache Kafka deletes whole segments (7 + 7 days by "
        "default). Not set on the broker by the services: say here what the cluster keeps. The inbox must keep "
        "an event's id at least this long."))
    retention_interval_s: float = Field(default=3600.0, gt=0, description=(
        "How often the relay and the consumer (each on one replica at a time) delete rows "
        "past their retention."))

    @model_validator(mode="after")
    def _enough_replicas(self) -> KafkaSettings:
        min_isr, replicas = self.topic_min_insync_replicas, self.topic_replication_factor
        if min_isr is not None and min_isr > replicas:
            raise ValueError(f"topic_min_insync_replicas ({min_isr}) cannot exceed topic_replication_factor "
                             f"({replicas}): no write would succeed")
        return self

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> KafkaSettings:
        if self.relay_heartbeat_s * 3 > self.relay_lease_s:
            raise ValueError(f"relay_heartbeat_s ({self.relay_heartbeat_s}) must be at most a third of "
                             f"relay_lease_s ({self.relay_lease_s}): a lease must survive a late heartbeat")
        return self

    @model_validator(mode="after")
    def _inbox_outlives_outbox(self) -> KafkaSettings:
        inbox, outbox = self.inbox_retention_days, self.outbox_retention_days
        if inbox is not None and (outbox is None or inbox < outbox + 1):
            raise ValueError(
                f"inbox_retention_days ({inbox}) must be at least outbox_retention_days + 1 "
                f"({'unset: kept for ever' if outbox is None else outbox + 1}): a consumer must remember an event "
                "for as long as its producer may publish it again")
        if inbox is not None and inbox < self.topic_retention_days:
            raise ValueError(
                f"inbox_retention_days ({inbox}) must be at least topic_retention_days ({self.topic_retention_days})"
                ": a consumer must remember an event for as long as the broker may deliver it again")
        return self


class OAuthClient(BaseModel):
    """A client allowed to use the client-credentials grant."""

    secret: SecretStr
    scopes: list[str]
    # Default deny: a client configured without areas sees none (and production refuses to start with it).
    areas: list[str] = Field(default_factory=list)
    # The partner agency (or other principal) this client acts for, if any.
    subject: str | None = None


def _dev_clients() -> dict[str, OAuthClient]:
    secret = SecretStr(DEV_CLIENT_SECRET)
    return {
        "kaenkhun-admin": OAuthClient(secret=secret, scopes=["*"], areas=["*"]),
        "khon-kaen-staff": OAuthClient(secret=secret, scopes=["*"], areas=["40"]),
        # A partner agency's client: tie it to a partner with POST /v1/partners {"client_id": "kk-partner"}; in the
        # registry it reads the contact of the households referred to that partner.
        "kk-partner": OAuthClient(secret=secret, scopes=["assistance:partner", "registry:partner", "events:subscribe"],
                                  areas=["40"]),
        # The ministry's grant system (MSDHS): reads back every batch it pushed and every payment, in every area.
        "msdhs-ministry": OAuthClient(secret=secret, scopes=["assistance:disbursements:read", "events:subscribe"],
                                      areas=["*"]),
    }


class AuthSettings(BaseSettings):
    """Token verification (every service) and the built-in client-credentials issuer."""

    model_config = SettingsConfigDict(env_prefix="KAENKHUN_AUTH_", extra="ignore")

    issuer: str = "kaenkhun-dev"
    audience: str = "kaenkhun"
    algorithm: str = "RS256"
    # Verification key: a PEM public key, or a JWKS URL (an external OIDC issuer in production).
    public_key_pem: str | None = None
    jwks_url: str | None = None
    # Signing key for the built-in token endpoint; None disables the endpoint.
    private_key_pem: SecretStr | None = None
    token_ttl_s: int = 3600
    # Tokens (ours or an external issuer's) whose exp lies further out than this are refused.
    max_token_lifetime_s: int = Field(default=86_400, ge=60)
    leeway_s: int = 30
    clients: dict[str, OAuthClient] = Field(default_factory=_dev_clients)

    @model_validator(mode="after")
    def _default_dev_keys(self) -> AuthSettings:
        if self.public_key_pem is None and self.jwks_url is None:
            self.public_key_pem = (DEV_KEYS_DIR / "public.pem").read_text()
            if self.private_key_pem is None:
                self.private_key_pem = SecretStr((DEV_KEYS_DIR / "private.pem").read_text())
        return self

    def uses_development_material(self) -> list[str]:
        """Names of settings still holding the public development keys or secrets."""
        problems: list[str] = []
        dev_public = (DEV_KEYS_DIR / "public.pem").read_text().strip()
        dev_private = (DEV_KEYS_DIR / "private.pem").read_text().strip()
        if self.public_key_pem and self.public_key_pem.strip() == dev_public:
            problems.append("KAENKHUN_AUTH_PUBLIC_KEY_PEM (development key)")
        if self.private_key_pem and self.private_key_pem.get_secret_value().strip() == dev_private:
            problems.append("KAENKHUN_AUTH_PRIVATE_KEY_PEM (development key)")
        for name, client in self.clients.items():
            if client.secret.get_secret_value() == DEV_CLIENT_SECRET:
                problems.append(f"KAENKHUN_AUTH_CLIENTS[{name}] (development secret)")
        return problems


class DatabaseSettings(BaseSettings):
    """Each engine's connection pool on PostgreSQL (env prefix KAENKHUN_DB_; SQLite, one file per process, has
    none to size). A service process has two engines, one for writes and one for reads (`ReadSessionDep`), so it
    opens at most 2 × (pool_size + max_overflow) connections; every replica of every service counts against the
    server's `max_connections` (README, "Running several replicas")."""

    model_config = SettingsConfigDict(env_prefix="KAENKHUN_DB_", extra="ignore")

    pool_size: int = Field(default=4, ge=1, description="connections each engine keeps open")
    max_overflow: int = Field(default=1, ge=0, description="connections an engine may open beyond pool_size "
                                                           "under load (closed again when returned)")
    pool_timeout_s: float = Field(default=15.0, gt=0, description=(
        "how long a unit of work waits for a free connection before it is answered 503 with Retry-After"))

    def connections_per_process(self) -> int:
        """The most connections one service process opens: its write and its read engine, each full."""
        return 2 * (self.pool_size + self.max_overflow)


class LimitSettings(BaseSettings):
    """Limits every service applies to each request (env prefix KAENKHUN_LIMITS_; see shared.guards)."""

    model_config = SettingsConfigDict(env_prefix="KAENKHUN_LIMITS_", extra="ignore")

    rate_per_s: float = Field(default=50.0, ge=0, description="requests per second per caller; 0: no limit")
    burst: int = Field(default=200, ge=1, description="requests a caller may make at once")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="largest JSON or form body")
    max_header_bytes: int = Field(default=16_384, ge=1024, description="largest request line and headers together")
    max_callers: int = Field(default=100_000, ge=100, description="buckets kept; the idlest are dropped")
    # What the HTTP server itself enforces (uvicorn): see README, "Behind a reverse proxy".
    keep_alive_s: int = Field(default=5, ge=1, description="an idle keep-alive connection is closed after this")
    max_concurrency: int = Field(default=1_000, ge=1, description="connections and tasks at once; beyond: 503")
    max_incomplete_event_bytes: int = Field(default=16_384, ge=1024,
                                            description="request line and headers still arriving (h11)")
    # Shared by the replicas: with a Redis URL, every replica of a service counts a caller's requests in one bucket
    # (rate_per_s and burst are then per service, not per process). Unset: each process counts its own.
    redis_url: SecretStr | None = Field(default=None, description=(
        "redis:// or rediss:// URL of the store the replicas share their buckets in; unset: per process"))
    redis_prefix: str = Field(default="kaenkhun:ratelimit:", min_length=1,
                              description="prefix of the keys (one per service and caller) in Redis")
    redis_timeout_s: float = Field(default=0.25, gt=0, description=(
        "how long a check may wait for Redis; past it, or if Redis is unreachable, the request is counted in "
        "this process instead (fail open, with a warning and `rate_limit_store_errors_total`)"))
    # Addresses (or CIDR ranges) of the reverse proxies whose X-Forwarded-For / -Proto are believed; empty: none,
    # so a client cannot choose the address its requests are counted under.
    trusted_proxies: list[str] = Field(default_factory=list)


class ServiceSettings(BaseSettings):
    """Base for each service's settings; subclasses set `service_name`, `default_port` and the env prefix."""

    service_name: ClassVar[str] = "service"
    default_port: ClassVar[int] = 8000

    # populate_by_name: code and tests may pass field names; the environment uses the aliases.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    env: Environment = Field(default=Environment.development, validation_alias="KAENKHUN_ENV")
    host: str = "127.0.0.1"
    port: int = 0
    database_url: str | None = None
    data_dir: Path = Field(
        default=REPO_ROOT / "var", validation_alias="KAENKHUN_DATA_DIR"
    )
    log_level: str = Field(default="INFO", validation_alias="KAENKHUN_LOG_LEVEL")
    log_json: bool = Field(default=True, validation_alias="KAENKHUN_LOG_JSON")
    # Start the outbox relay and the consumers with the app (tests may switch them off).
    run_bus: bool = True
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    @model_validator(mode="after")
    def _defaults(self) -> ServiceSettings:
        if self.port == 0:
            self.port = self.default_port
        if self.database_url is None:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.db')}"
        return self

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    def uses_development_material(self) -> list[str]:
        """Settings still holding public development keys or secrets (services add their own)."""
        return self.auth.uses_development_material()

    def body_limits(self) -> dict[str, int]:
        """Paths whose JSON bodies may be larger than `limits.max_body_bytes` (what they promise to take)."""
        return {}

    def check_production(self) -> None:
        """Refuse to run in production with development secrets or keys, or with a client of no area."""
        if self.env is not Environment.production:
            return
        problems = self.uses_development_material()
        if problems:
            raise RuntimeError(
                "KAENKHUN_ENV=production refuses development secrets or keys: " + ", ".join(problems)
            )
        nowhere = sorted(name for name, client in self.auth.clients.items() if not client.areas)
        if nowhere:
            raise RuntimeError("KAENKHUN_ENV=production refuses clients configured without areas (they would see "
                               "nothing; give each its areas, or \"*\"): " + ", ".join(nowhere))

