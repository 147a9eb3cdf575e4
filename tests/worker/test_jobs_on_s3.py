"""The worker on an S3 blob store (a real SeaweedFS server, `tests/s3kit.py`), as on a host that shares no
directory with the API: the dataset's images read from the bucket, the trained checkpoint written to it
before the model row names it, then read back from it (a temporary local copy for `torch.load`) by a
stimuli job whose stimuli go to the bucket too. Nothing lands in the local blob directory.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from backend.db import session_scope
from backend.models import Image, Stimulus, StimulusSet, TrainedModel
from backend.services.jobs import create_stimuli_job, create_train_job
from backend.settings import Settings
from backend.storage_s3 import S3BlobStore
from tests.s3kit import S3Server
from tests.worker.workerkit import FAST_TRAIN, make_settings
from worker.jobs.common import load_stored_model
from worker.runner import execute
from worker.runtime import Runtime


@pytest.fixture
def settings(tmp_path: Path, sqlite_template: Path, s3_server: S3Server) -> Settings:
    db = tmp_path / "sipat.db"
    db.write_bytes(sqlite_template.read_bytes())
    return make_settings(
        f"sqlite:///{db}",
        tmp_path,
        blob_url=f"s3://{s3_server.bucket}/w-{secrets.token_hex(6)}",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id=s3_server.access_key_id,
        s3_secret_access_key=s3_server.secret_access_key,
        s3_region="us-east-1",
    )


def test_train_then_stimuli_with_blobs_in_s3(rt: Runtime, dataset_id: int, s3_server: S3Server) -> None:
    assert isinstance(rt.storage, S3BlobStore)
    prefix = rt.settings.blob_url.removeprefix(f"s3://{s3_server.bucket}/") + "/"
    with session_scope(rt.session_factory) as session:
        job, model = create_train_job(session, {"dataset_id": dataset_id, **FAST_TRAIN})
        train_id, model_id = job.id, model.id
        images = set(session.scalars(select(Image.sha256)))
    assert execute(train_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        row = session.get(TrainedModel, model_id)
        session.expunge(row)
    assert rt.storage.exists(row.checkpoint_sha256)
    net, meta = load_stored_model(rt.storage, row, torch.device("cpu"))
    assert meta["arch"] == "small_cnn" and net(torch.zeros(1, 1, 28, 28)).shape == (1, 6)

    with session_scope(rt.session_factory) as session:
        sset = StimulusSet(
            dataset_id=dataset_id,
            model_id=model_id,
            attack="pgd",
            eps_levels=[0.1],
            masked=True,
            steps=2,
            params={"split": "test", "n_images": 4, "seed": 1},
        )
        session.add(sset)
        session.flush()
        set_id, stimuli_job = sset.id, create_stimuli_job(session, sset).id
    assert execute(stimuli_job, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        stimuli = set(session.scalars(select(Stimulus.sha256).where(Stimulus.stimulus_set_id == set_id)))
    assert stimuli and all(rt.storage.exists(sha) for sha in stimuli)

    stored = {key.rsplit("/", 1)[1] for key in s3_server.keys(prefix)}
    assert images <= stored and row.checkpoint_sha256 in stored and stimuli <= stored
    assert not (rt.settings.data_dir / "blobs").exists()
