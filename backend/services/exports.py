"""Study data as CSV or JSON, streamed in constant memory.

Rows are read as plain column tuples (no ORM objects) in batches of `BATCH_ROWS` (`yield_per`: a server-side
cursor on PostgreSQL, `fetchmany` on SQLite) and each batch is encoded and handed on before the next is read,
so an export of a million responses holds one batch at a time. The export opens its own session
(`session_factory`), because the response body is produced after the request's own transaction has ended.

`shown_count` (responses, annotations): how many times the trial's image was handed out; above 1 when the
participant reloaded the page (or lost the connection) during the trial and saw it again.

Cells: timestamps as ISO 8601 (UTC), booleans as true/false, JSON-valued fields (client timestamps, client
info, recruitment ids) as compact JSON text in CSV and as objects in JSON, missing values empty (CSV) or null.
The participants table also has the recruitment ids (Prolific's PID, study and session ids; MTurk's worker,
assignment and HIT ids) and the display (device pixel ratio, screen and viewport size, the card calibration's
px per mm, the blind-spot viewing distance, and the mean stimulus size in degrees of visual angle,
`backend.services.display`) as columns of their own, and the questionnaire's answers. Responses have the
trial's stimulus size in degrees (null without both calibrations), the trial's focus, visibility and
fullscreen losses as the page counted them (null: not reported), and the stimulus set a trial came from
(`stimulus_set_id`, `stimulus_set_name`: a study may compare several sets). Simulated sessions (a
researcher's pilot runs, `backend.api.simulation`) are left out unless `include_simulated`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from backend.csvsafe import spreadsheet_safe
from backend.db import session_scope
from backend.models import Annotation, Image, Participant, Response, Stimulus, StimulusSet, Trial
from backend.services.display import mean_display_sizes, participant_display, trial_display
from backend.services.errors import NotFoundError
from backend.services.studies import participant_counts

BATCH_ROWS = 500
ExportTable = Literal["responses", "participants", "annotations"]
ExportFormat = Literal["csv", "json", "ndjson"]
Batch = list[dict[str, Any]]

RESPONSE_COLUMNS = (
    "response_id", "participant_id", "participant_external_id", "participant_index", "participant_flagged",
    "trial_id", "position", "shown_count", "phase", "stimulus_set_id", "stimulus_id", "image_id", "image_filename",
    "label", "eps", "masked", "expected", "judgment", "correct", "confidence", "rt_ms", "created_at",
    "focus_losses", "visibility_losses", "fullscreen_exits", "stimulus_width_deg", "stimulus_height_deg",
    "client_timestamps", "stimulus_set_name",
)  # fmt: skip
PARTICIPANT_COLUMNS = (
    "participant_id", "index", "external_id", "consent", "started_at", "completed_at", "completed",
    "completion_code", "flagged", "trials_total", "trials_answered", "catch_trials", "catch_errors",
    "prolific_pid", "prolific_study_id", "prolific_session_id", "mturk_worker_id", "mturk_assignment_id",
    "mturk_hit_id", "device_pixel_ratio", "screen_width", "screen_height", "viewport_width", "viewport_height",
    "px_per_mm", "viewing_distance_mm", "stimulus_width_deg", "stimulus_height_deg", "questionnaire",
    "client_info", "recruitment", "simulated",
)  # fmt: skip
#: The display as the page reported it at enrolment (`ClientInfo`), as columns of their own (`client_info`
#: keeps the whole object): a stimulus's size in device pixels, and with `px_per_mm` (card calibration) in mm.
DISPLAY_COLUMNS = (
    "device_pixel_ratio", "screen_width", "screen_height", "viewport_width", "viewport_height", "px_per_mm",
)  # fmt: skip
#: The recruitment ids as columns of their own (the `recruitment` object keeps them all as sent).
RECRUITMENT_COLUMNS = {
    "prolific_pid": "PROLIFIC_PID",
    "prolific_study_id": "STUDY_ID",
    "prolific_session_id": "SESSION_ID",
    "mturk_worker_id": "workerId",
    "mturk_assignment_id": "assignmentId",
    "mturk_hit_id": "hitId",
}
ANNOTATION_COLUMNS = (
    "annotation_id", "participant_id", "participant_external_id", "participant_index", "trial_id", "position",
    "shown_count", "image_id", "label", "stimulus_id", "width", "height", "mask_sha256", "mask_url", "strokes_length",
    "duration_ms", "created_at", "strokes",
)  # fmt: skip
COLUMNS: dict[str, tuple[str, ...]] = {
    "responses": RESPONSE_COLUMNS,
    "participants": PARTICIPANT_COLUMNS,
    "annotations": ANNOTATION_COLUMNS,
}


def _batches(session: Session, query: Select[Any], to_row: Callable[[Any], dict[str, Any]]) -> Iterator[Batch]:
    result = session.execute(query.execution_options(yield_per=BATCH_ROWS))
    for partition in result.partitions():
        yield [to_row(row) for row in partition]


#: Who answered and which trial: the first columns of the response and annotation exports.
_WHO_AND_WHERE = (
    Participant.id.label("participant_id"),
    Participant.external_id.label("participant_external_id"),
    Participant.index.label("participant_index"),
    Trial.id.label("trial_id"),
    Trial.position,
    Trial.shown_count,
)


@dataclass(frozen=True)
class _Options:
    mask_url: str  # formatted with `annotation_id`
    include_simulated: bool  # researchers' pilot runs (`Participant.simulated`) too


def _people(query: Select[Any], options: _Options) -> Select[Any]:
    """`query` without the simulated sessions unless they are asked for."""
    return query if options.include_simulated else query.where(Participant.simulated.is_(False))


def _answers(model: type[Response | Annotation], study_id: int, *columns: Any) -> Select[Any]:
    """`columns` of the answers (`model`) of study `study_id`, joined with their trial, participant, stimulus and
    image, in session and trial order."""
    return (
        select(*columns)
        .select_from(model)
        .join(Trial, Trial.id == model.trial_id)
        .join(Participant, Participant.id == Trial.participant_id)
        .join(Stimulus, Stimulus.id == Trial.stimulus_id)
        .join(Image, Image.id == Stimulus.image_id)
        .where(Participant.study_id == study_id)
        .order_by(Participant.index, Trial.position)
    )


def _response_batches(session: Session, study_id: int, options: _Options) -> Iterator[Batch]:
    query = _answers(
        Response,
        study_id,
        Response.id.label("response_id"),
        *_WHO_AND_WHERE,
        Participant.flagged.label("participant_flagged"),
        Trial.phase,
        Stimulus.stimulus_set_id,
        StimulusSet.name.label("stimulus_set_name"),
        Stimulus.id.label("stimulus_id"),
        Stimulus.image_id,
        Image.filename.label("image_filename"),
        Image.label,
        Stimulus.eps,
        StimulusSet.masked,
        Response.judgment,
        Response.confidence,
        Response.rt_ms,
        Response.created_at,
        Response.focus_losses,
        Response.visibility_losses,
        Response.fullscreen_exits,
        Response.client_timestamps,
        Participant.client_info,
    ).join(StimulusSet, StimulusSet.id == Stimulus.stimulus_set_id)

    def to_row(row: Any) -> dict[str, Any]:
        values = row._asdict()
        values.update(trial_display(values.pop("client_info"), row.client_timestamps))
        values["expected"] = expected = "perturbed" if row.eps > 0 else "clean"
        values["correct"] = row.judgment == expected
        return values

    return _batches(session, _people(query, options), to_row)


def _participant_batches(session: Session, study_id: int, options: _Options) -> Iterator[Batch]:
    counts = participant_counts(study_id)
    sizes = mean_display_sizes(study_id)
    query = (
        select(
            Participant,
            counts.c.total,
            counts.c.answered,
            counts.c.catch_trials,
            counts.c.catch_errors,
            sizes.c.width,
            sizes.c.height,
        )
        .outerjoin(counts, counts.c.pid == Participant.id)
        .outerjoin(sizes, sizes.c.pid == Participant.id)
        .where(Participant.study_id == study_id)
        .order_by(Participant.index)
    )

    def to_row(row: Any) -> dict[str, Any]:
        person, total, answered, catch_trials, catch_errors, width, height = row
        return {
            "participant_id": person.id,
            "index": person.index,
            "external_id": person.external_id,
            "consent": person.consent,
            "started_at": person.started_at,
            "completed_at": person.completed_at,
            "completed": person.completed_at is not None,
            "completion_code": person.completion_code,
            "flagged": person.flagged,
            "trials_total": total or 0,
            "trials_answered": answered or 0,
            "catch_trials": int(catch_trials or 0),
            "catch_errors": int(catch_errors or 0),
            "client_info": person.client_info,
            "recruitment": person.recruitment,
            "questionnaire": person.questionnaire,
            **{column: (person.recruitment or {}).get(key) for column, key in RECRUITMENT_COLUMNS.items()},
            **{column: (person.client_info or {}).get(column) for column in DISPLAY_COLUMNS},
            **participant_display(person.client_info, width, height),
            "simulated": person.simulated,
        }

    return _batches(session, _people(query, options), to_row)


def _annotation_batches(session: Session, study_id: int, options: _Options) -> Iterator[Batch]:
    query = _answers(
        Annotation,
        study_id,
        Annotation.id.label("annotation_id"),
        *_WHO_AND_WHERE,
        Stimulus.image_id,
        Image.label,
        Stimulus.id.label("stimulus_id"),
        Annotation.width,
        Annotation.height,
        Annotation.mask_sha256,
        Annotation.strokes,
        Annotation.duration_ms,
        Annotation.created_at,
    )

    def to_row(row: Any) -> dict[str, Any]:
        values = row._asdict()
        values["strokes_length"] = stroke_count(values["strokes"])  # and the record itself (JSON text in CSV)
        values["mask_url"] = options.mask_url.format(annotation_id=row.annotation_id)
        return values

    return _batches(session, _people(query, options), to_row)


def stroke_count(record: Any) -> int:
    """Paint and erase strokes in an annotation's stroke record: the painter's record is an object whose
    `actions` list holds them (with undo/redo already applied; `clear` actions are not strokes); a plain
    list (older clients, the JSON API) is the strokes themselves."""
    actions = record.get("actions") if isinstance(record, dict) else record
    if not isinstance(actions, list):
        return 0
    return sum(1 for a in actions if not (isinstance(a, dict) and a.get("mode") == "clear"))


def annotation_strokes(session: Session, study_id: int, annotation_id: int) -> dict[str, Any]:
    """One annotation of study `study_id` with its stroke record (what `AnnotationStrokesOut` shows); 404 for
    an annotation of another study, worded as for an unknown one."""
    row = session.execute(
        select(
            Annotation.id.label("annotation_id"),
            Participant.study_id,
            Participant.id.label("participant_id"),
            Trial.id.label("trial_id"),
            Stimulus.image_id,
            Annotation.width,
            Annotation.height,
            Annotation.duration_ms,
            Annotation.strokes,
        )
        .join(Trial, Trial.id == Annotation.trial_id)
        .join(Participant, Participant.id == Trial.participant_id)
        .join(Stimulus, Stimulus.id == Trial.stimulus_id)
        .where(Annotation.id == annotation_id, Participant.study_id == study_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no annotation {annotation_id} in study {study_id}")
    values = row._asdict()
    values["strokes_length"] = stroke_count(values["strokes"])
    return values


_SOURCES: dict[str, Callable[[Session, int, _Options], Iterator[Batch]]] = {
    "responses": _response_batches,
    "participants": _participant_batches,
    "annotations": _annotation_batches,
}


# --- encoding -----------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    return spreadsheet_safe(value)


def csv_chunks(columns: tuple[str, ...], batches: Iterator[Batch]) -> Iterator[bytes]:
    """A header line, then one encoded chunk per batch (RFC 4180 quoting, CRLF line ends, UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield buffer.getvalue().encode()
    for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([_csv_value(row[c]) for c in columns] for row in batch)
        yield buffer.getvalue().encode()


def json_chunks(columns: tuple[str, ...], batches: Iterator[Batch]) -> Iterator[bytes]:
    """A JSON array of objects (keys in `columns` order), one chunk per batch."""
    yield b"["
    first = True
    for batch in batches:
        parts = []
        for row in batch:
            parts.append(("\n" if first else ",\n") + json.dumps({c: _json_value(row[c]) for c in columns}))
            first = False
        yield "".join(parts).encode()
    yield b"\n]\n"


def ndjson_chunks(columns: tuple[str, ...], batches: Iterator[Batch]) -> Iterator[bytes]:
    """Newline-delimited JSON: one object per line (keys in `columns` order), so a reader can stream or
    append without parsing a whole array (`jq -c`, `pandas.read_json(lines=True)`)."""
    for batch in batches:
        yield "".join(json.dumps({c: _json_value(row[c]) for c in columns}) + "\n" for row in batch).encode()


def stream_export(
    session_factory: sessionmaker[Session],
    study_id: int,
    table: ExportTable,
    fmt: ExportFormat,
    *,
    mask_url: str = "{annotation_id}",
    include_simulated: bool = False,
) -> Iterator[bytes]:
    """The export `table` of study `study_id` as `fmt` chunks; `mask_url` is formatted with `annotation_id`
    to give each annotation's mask link. Simulated sessions (researchers' pilot runs) are left out unless
    `include_simulated`. Check that the study exists before starting to stream."""
    if table not in COLUMNS:
        raise ValueError(f"unknown export {table!r}; use one of {', '.join(COLUMNS)}")
    encode = {"csv": csv_chunks, "json": json_chunks, "ndjson": ndjson_chunks}[fmt]
    with session_scope(session_factory) as session:
        options = _Options(mask_url=mask_url, include_simulated=include_simulated)
        yield from encode(COLUMNS[table], _SOURCES[table](session, study_id, options))
