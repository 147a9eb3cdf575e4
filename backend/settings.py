"""Runtime settings of the service, read once from `SIPAT_*` environment variables.

The defaults give the embedded mode (one machine, no servers): a SQLite database, blobs and a SQLite-backed
Celery broker under `./var/` of the working directory, resolved to absolute paths so that the API, the worker
and the CLI started from the same directory agree. The distributed mode only changes these values
(`SIPAT_DATABASE_URL=postgresql+psycopg://...`, `SIPAT_BROKER_URL=redis://...`, `SIPAT_DATA_DIR=/mnt/blobs`
or, for hosts that share no volume, `SIPAT_BLOB_URL=s3://bucket/prefix` with `SIPAT_S3_*`).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Values that mean "someone forgot to set the secret"; refused outside development.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "change_me", "changethis", "secret", "please-change", "default", "sipat", "test"}
)
MIN_SECRET_LENGTH = 32


def _var_dir() -> Path:
    return (Path.cwd() / "var").resolve()


class Settings(BaseSettings):
    """All knobs of the service; every field can be set as `SIPAT_<FIELD>` (e.g. `SIPAT_DATABASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="SIPAT_", extra="ignore", validate_default=True)

    env: Literal["development", "production"] = Field(
        default="development",
        description="'production' refuses placeholder secrets; 'development' only warns.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means the SQLite file ./var/sipat.db (absolute path resolved).",
    )
    data_dir: Path = Field(
        default=Path("var/data"),
        description="Directory of the content-addressed blob store and of the generated secret key.",
    )
    blob_url: str = Field(
        default="",
        description="Where blobs live: empty means the directory <data_dir>/blobs (the embedded default); "
        "file:///abs/path another directory (e.g. a volume all containers mount); s3://bucket/prefix objects "
        "of an S3-compatible bucket (which must exist), for an API and workers on different hosts.",
    )
    s3_endpoint_url: str = Field(
        default="",
        description="Endpoint of the S3-compatible service (e.g. http://seaweedfs:8333, https://minio.lab:9000); "
        "empty means AWS S3.",
    )
    s3_region: str = Field(default="", description="S3 region; empty means boto3's default (AWS_REGION ...).")
    s3_access_key_id: str = Field(
        default="",
        description="S3 access key; empty (with an empty secret) means boto3's own chain: AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY, ~/.aws, an instance role.",
    )
    s3_secret_access_key: SecretStr = Field(default=SecretStr(""), description="S3 secret key (see above).")
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="Bucket in the path or in the host name; 'auto' is path style when an endpoint URL is set "
        "(MinIO, SeaweedFS), boto3's choice otherwise.",
    )
    broker_url: str = Field(
        default="",
        description="Celery broker URL; empty means kombu's SQLAlchemy transport on ./var/broker.db.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for signing; empty means one generated once and kept in <data_dir>/secret_key.",
    )
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1024, description="Largest accepted upload (dataset zip), in bytes."
    )
    public_base_url: str = Field(
        default="http://localhost:8000",
        description="Origin participants reach the service at, used for absolute links (e.g. in exports); "
        "when not set, http://localhost:<port>.",
    )
    queue_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="Prefix of the Celery queue names ('gpu', 'cpu'), to let several deployments or test runs "
        "share one Redis; workers must run with the same value.",
    )
    job_heartbeat_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between a running job's heartbeats (and flushes of its latest progress).",
    )
    job_stale_after_s: float = Field(
        default=120.0,
        gt=0,
        description="A running job whose heartbeat is older than this many seconds is taken for lost: the reaper "
        "re-queues it (or fails it after max_attempts), and a redelivered message may claim it. Keep it well "
        "above job_heartbeat_s.",
    )
    job_requeue_after_s: float = Field(
        default=600.0,
        gt=0,
        description="A job still `queued` this many seconds after its message was due is taken for lost by the "
        "broker (a Redis without persistence restarted, a send that failed after the commit): the reaper sends "
        "it again, once per this interval while it stays queued. Duplicates are no-ops, so a job that merely "
        "waits for busy workers costs one extra message per interval; keep it well above job_reaper_interval_s.",
    )
    job_reaper_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between two runs of the stale-job reaper in each worker.",
    )
    broker_visibility_timeout_s: float = Field(
        default=48 * 3600.0,
        gt=0,
        description="Redis broker only: seconds a delivered but unacknowledged message stays invisible before "
        "Redis gives it to another worker. Messages are acknowledged when their job ends (task_acks_late), so "
        "this must exceed the longest job (a training run), or a job still running is delivered a second time "
        "(a no-op thanks to claim_job, but a wasted slot). A lost worker's job does not wait for it: the reaper "
        "re-queues it after job_stale_after_s, and a worker that stops cleanly gives its messages back at once.",
    )
    worker_soft_shutdown_s: float = Field(
        default=10.0,
        ge=0,
        description="Celery's soft shutdown: on a cold shutdown (SIGQUIT; SIGTERM too where REMAP_SIGTERM=SIGQUIT, as "
        "in docker-compose.yml) the running job gets this many seconds to end, then it is interrupted: its row goes "
        "back to `queued` with a new message (worker.pool, backend.services.jobs.run_job), so another worker "
        "resumes it from its checkpoint at once instead of this one training on for hours. 0: no grace period.",
    )
    worker_alive_file: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "sipat-worker.alive",
        description="File a worker touches every few seconds while it runs; `python -m worker.healthcheck` reads "
        "its age. Give each worker its own when several share a host outside containers.",
    )
    job_wait_retry_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds before a job that waits for another one (stimuli waiting for their model) looks again.",
    )

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="'json': one JSON object per log line from the API (uvicorn's loggers) and the workers (Celery's), "
        "credentials redacted (backend.logjson); 'text': the servers' own formats.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body of any route but the uploads (dataset zips: max_upload_bytes) and the "
        "annotation route (its own, larger bound), counted as the bytes arrive; larger bodies get 413.",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where the rate limits count (a `limits` storage URI): memory:// counts per process (the "
        "embedded mode); redis://host:6379/n shares the counts between API processes and hosts.",
    )
    rate_limit_enrol_per_client: str = Field(
        default="60/minute",
        description="Session starts per client address (`limits` notation, e.g. '60/minute'; empty: no limit).",
    )
    rate_limit_enrol_per_study: str = Field(
        default="1200/minute", description="Session starts per study, from all clients together (empty: no limit)."
    )
    rate_limit_enrol_burst_per_study: str = Field(
        default="50 per 5 seconds",
        description="Session starts per study in a short window, from all clients together: a flood from many "
        "addresses is refused before it writes trial rows, while the participants already enrolled go on.",
    )
    rate_limit_password_checks: str = Field(
        default="20 per 5 seconds",
        description="argon2 password checks (dashboard logins) per API process, from all clients together, "
        "counted in the process's memory (backend.hashbudget); past it a login gets 429 without being hashed.",
    )
    password_check_concurrency: int = Field(
        default=1, ge=1, description="argon2 hashes running at once per API process (each uses up to 4 cores)."
    )
    password_check_backlog: int = Field(
        default=4,
        ge=0,
        description="Logins that may wait for a hash slot per API process; any more are refused 429 at once.",
    )
    password_check_wait_s: float = Field(
        default=2.0, ge=0, description="How long a waiting login waits for a hash slot before it is refused 429."
    )
    rate_limit_login_per_client: str = Field(
        default="30/minute", description="Dashboard login attempts per client address, whatever the e-mail."
    )
    rate_limit_login_per_account: str = Field(
        default="10/minute", description="Dashboard login attempts per e-mail, from all clients together."
    )
    rate_limit_token_failures_per_client: str = Field(
        default="30/minute",
        description="Research API requests with an unknown or revoked bearer token, per client address; past "
        "it every request of that client is refused 429 until the window has passed.",
    )
    forwarded_allow_ips: str = Field(
        default="",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-For is believed for the rate "
        "limits' client address; from anyone else the header is ignored (empty: never believed).",
    )

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.database_url = _absolute_sqlite(self.database_url or f"sqlite:///{_var_dir() / 'sipat.db'}")
        self.broker_url = _absolute_sqlite(self.broker_url or f"sqla+sqlite:///{_var_dir() / 'broker.db'}")
        if "public_base_url" not in self.model_fields_set:  # not given: the address this server runs at
            self.public_base_url = f"http://localhost:{self.port}"
        self.public_base_url = self.public_base_url.rstrip("/")
        _check_blob_url(self.blob_url)
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key.get_secret_value()):
            raise ValueError("set both SIPAT_S3_ACCESS_KEY_ID and SIPAT_S3_SECRET_ACCESS_KEY, or neither")
        if self.secret_key is None or not self.secret_key.get_secret_value():
            self.secret_key = SecretStr(_load_or_create_secret(self.data_dir / "secret_key"))
        _check_secret(self.secret_key.get_secret_value(), self.env)
        return self


def _absolute_sqlite(url: str) -> str:
    """A SQLite URL with a relative file path made absolute (so processes started elsewhere agree)."""
    scheme, sep, path = url.partition(":///")
    if not sep or (scheme.split("+")[-1] != "sqlite" and scheme.split("+")[0] != "sqlite"):
        return url
    if not path or path.startswith("/") or path.startswith(":memory:") or path.startswith("file:"):
        return url
    return f"{scheme}:///{(Path.cwd() / path).resolve()}"


def _check_blob_url(url: str) -> None:
    """Refuse a blob store URL that `backend.blobstores` could not open, at start-up rather than at the first
    upload."""
    if not url:
        return
    scheme, sep, rest = url.partition("://")
    if scheme == "file" and sep and rest.startswith("/"):
        return
    if scheme == "s3" and sep and rest.split("/", 1)[0]:
        return
    raise ValueError(
        f"SIPAT_BLOB_URL={url!r} is not a blob store: leave it empty (<data_dir>/blobs), or give "
        "file:///absolute/dir or s3://bucket/prefix"
    )


def _check_secret(value: str, env: str) -> None:
    weak = value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LENGTH
    if not weak:
        return
    message = (
        f"SIPAT_SECRET_KEY is a placeholder or shorter than {MIN_SECRET_LENGTH} characters; set it to the "
        "output of `python -c 'import secrets; print(secrets.token_urlsafe(48))'` or leave it unset to have "
        "one generated in <data_dir>/secret_key"
    )
    if env == "production":
        raise ValueError(message)
    warnings.warn(message, stacklevel=3)


def _load_or_create_secret(path: Path) -> str:
    """Read the key kept at `path`, or create it (mode 0600) the first time; concurrent starters agree."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(candidate + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # fails if another process won the race; then use its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read from the environment once; `get_settings.cache_clear()` in tests)."""
    return Settings()
