"""ORM tables of the platform (SQLAlchemy 2.0, typed `Mapped[...]`).

Portable across SQLite and PostgreSQL: plain JSON (not JSONB), string columns with named CHECK constraints for
enumerations, timestamps stored in UTC and always returned timezone-aware. Blobs (images, stimuli, masks,
checkpoints) live in the content-addressed store (`backend.storage`); rows hold their sha256 only, and a blob
is always written before a row points to it.

The Alembic migrations in `migrations/versions/` must describe exactly these tables;
`tests/backend/test_migrations.py` fails when they drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from backend.vocabulary import STIMULUS_ATTACKS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA256_LEN = 64

SALIENCE_SOURCES = ("imported", "gradcam", "human_mean")
ATTACKS = STIMULUS_ATTACKS  # the attacks a stimulus set can be made with (migration 0009 widened the CHECK)
NORMS = ("linf", "l2")
STIMULUS_SET_STATUSES = ("pending", "generating", "ready", "failed")
STIMULUS_ROLES = ("trial", "catch", "annotate")
STUDY_STATUSES = ("draft", "open", "closed")
TRIAL_PHASES = ("practice", "main", "catch", "annotate")
JUDGMENTS = ("perturbed", "clean")
JOB_KINDS = ("generate_stimuli", "train", "evaluate", "rank_paintings")  # 0013 widened the CHECK
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=column)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware (SQLite keeps no offset; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one, e.g. datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The researcher who created it (research API access, `backend.services.ownership`); None: administrators
    #: only. No foreign key, as for studies (migrations 0006, 0012).
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)

    images: Mapped[list[Image]] = relationship(back_populates="dataset", passive_deletes=True)


class Image(Base):
    """One source image of a dataset; `sha256` names its blob (the file bytes as uploaded, PNG or JPEG)."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("dataset_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(255))
    split: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(SHA256_LEN))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(1024))

    dataset: Mapped[Dataset] = relationship(back_populates="images")


class SalienceMap(Base):
    """A grayscale PNG at the image's size, 255 = salient; imported, Grad-CAM of a model, or human mean."""

    __tablename__ = "salience_maps"
    __table_args__ = (_one_of("source", SALIENCE_SOURCES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(SHA256_LEN))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainedModel(Base):
    """A model trained (or imported) for a dataset; `checkpoint_sha256` is null until training stored one."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    arch: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(SHA256_LEN))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The researcher who created it (research API access, `backend.services.ownership`); None: administrators
    #: only. No foreign key, as for studies (migrations 0006, 0012).
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)


class StimulusSet(Base):
    """Images of a dataset attacked at graded eps (in [0,1] pixel units) against a model."""

    __tablename__ = "stimulus_sets"
    __table_args__ = (
        _one_of("attack", ATTACKS),
        _one_of("norm", NORMS),
        _one_of("status", STIMULUS_SET_STATUSES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    attack: Mapped[str] = mapped_column(String(16), default="pgd")
    norm: Mapped[str] = mapped_column(String(8), default="linf")
    eps_levels: Mapped[list[Any]] = mapped_column(default=list)
    masked: Mapped[bool] = mapped_column(Boolean, default=False)
    steps: Mapped[int] = mapped_column(Integer, default=10)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The researcher who created it (research API access, `backend.services.ownership`); None: administrators
    #: only. No foreign key, as for studies (migrations 0006, 0012).
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)


class Stimulus(Base):
    """One image as shown to participants: eps 0 is the clean image, role 'catch' an obvious perturbation.

    `sha256` names a PNG blob at the displayed size; `linf`/`l2` are the achieved perturbation norms in [0,1]
    pixel units; `pred_before`/`pred_after` the model's predicted class names.
    """

    __tablename__ = "stimuli"
    __table_args__ = (
        UniqueConstraint("stimulus_set_id", "image_id", "eps", "role"),
        _one_of("role", STIMULUS_ROLES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    stimulus_set_id: Mapped[int] = mapped_column(ForeignKey("stimulus_sets.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    eps: Mapped[float] = mapped_column(Float)
    role: Mapped[str] = mapped_column(String(8), default="trial")
    sha256: Mapped[str] = mapped_column(String(SHA256_LEN))
    linf: Mapped[float | None] = mapped_column(Float)
    l2: Mapped[float | None] = mapped_column(Float)
    pred_before: Mapped[str | None] = mapped_column(String(255))
    pred_after: Mapped[str | None] = mapped_column(String(255))

    image: Mapped[Image] = relationship()


class Study(Base):
    """A study participants take part in at /study/<slug>; `config` is a `backend.study.config.StudyConfig`.

    `next_index` is the index the next new participant gets (`backend.services.participants.start_session`).
    """

    __tablename__ = "studies"
    __table_args__ = (_one_of("status", STUDY_STATUSES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(8), default="draft")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    next_index: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The researcher who created it (research API access); None: administrators only. No foreign key: see
    #: migration 0006 (SQLite cannot add one without rebuilding the table).
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)


class Participant(Base):
    """One session of one person; `index` (0, 1, ...) within the study drives the schedule's rotation.

    The session token (the participant's credential, in their URLs) is stored only as its sha256, in the
    column `token`, so a leaked table lets nobody answer as a participant.
    """

    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("study_id", "external_id"),
        UniqueConstraint("study_id", "index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column("token", String(64), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(128))
    index: Mapped[int] = mapped_column(Integer)
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    client_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    recruitment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completion_code: Mapped[str | None] = mapped_column(String(200))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A researcher's pilot run (`?simulate=1`): left out of results and exports unless asked for.
    simulated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The end-of-study questionnaire's answers (`StudyConfig.questionnaire`), item id -> value; None before.
    questionnaire: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    study: Mapped[Study] = relationship()
    trials: Mapped[list[Trial]] = relationship(
        back_populates="participant", order_by="Trial.position", passive_deletes=True
    )


class Trial(Base):
    """One scheduled trial; `media_key` is the random id its image is served under (reveals nothing)."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("participant_id", "position"),
        _one_of("phase", TRIAL_PHASES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimuli.id", ondelete="RESTRICT"), index=True)
    media_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: times the trial was handed out by `next` (a reload shows it again)
    shown_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    participant: Mapped[Participant] = relationship(back_populates="trials")
    stimulus: Mapped[Stimulus] = relationship()
    response: Mapped[Response | None] = relationship(back_populates="trial", passive_deletes=True)
    annotation: Mapped[Annotation | None] = relationship(back_populates="trial", passive_deletes=True)


class Response(Base):
    """A detection judgment; `rt_ms` from stimulus onset to answer (ms), confidence 1 (guess) .. 4 (sure).

    `focus_losses`, `visibility_losses`, `fullscreen_exits`: how often during the trial the window lost focus,
    the page was hidden (another tab, minimised) and fullscreen was left; null when the page did not report
    them (answers through the API, older pages).
    """

    __tablename__ = "responses"
    __table_args__ = (
        _one_of("judgment", JUDGMENTS),
        CheckConstraint("confidence BETWEEN 1 AND 4", name="confidence"),
        CheckConstraint("rt_ms > 0", name="rt_ms"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), unique=True)
    judgment: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[int] = mapped_column(Integer)
    rt_ms: Mapped[float] = mapped_column(Float)
    client_timestamps: Mapped[dict[str, Any]] = mapped_column(default=dict)
    focus_losses: Mapped[int | None] = mapped_column(Integer)
    visibility_losses: Mapped[int | None] = mapped_column(Integer)
    fullscreen_exits: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    trial: Mapped[Trial] = relationship(back_populates="response")


class Annotation(Base):
    """A painted salience mask: 8-bit grayscale PNG blob at `width` x `height`, 255 = salient."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), unique=True)
    mask_sha256: Mapped[str] = mapped_column(String(SHA256_LEN))
    strokes: Mapped[list[Any]] = mapped_column(default=list)
    duration_ms: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    trial: Mapped[Trial] = relationship(back_populates="annotation")


class Job(Base):
    """Long work done by a worker; its state lives here, not in Celery's result backend."""

    __tablename__ = "jobs"
    __table_args__ = (_one_of("kind", JOB_KINDS), _one_of("status", JOB_STATUSES))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    eta_s: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The researcher who created it (research API access, `backend.services.ownership`); None: administrators
    #: only. No foreign key, as for studies (migrations 0006, 0012).
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the current message of a `queued` job was due at the broker (set with the row going to `queued`;
    #: later for a retry with a countdown). NULL on rows older than the column: read `created_at` instead.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    """A researcher; `email` is stored lower-case, `password_hash` is an argon2id hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: In every dashboard session cookie; logging out raises it, which ends all of the user's sessions.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiToken(Base):
    """A bearer token of the research API; only its sha256 is kept, so a leaked table grants nothing."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(SHA256_LEN), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
