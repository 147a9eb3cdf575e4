"""Trained models as the research API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    arch: str
    method: str = Field(description="Training method: standard, pgd_at, trades, sip_at, sip_trades, ...")
    dataset_id: int | None
    job_id: int | None = Field(description="The train job that makes (or made) this model.")
    job_status: str | None = Field(description="Status of that job; null for models made elsewhere.")
    has_checkpoint: bool
    checkpoint_sha256: str | None
    created_at: datetime


class ModelDetail(ModelOut):
    config: dict[str, Any] = Field(description="The training parameters.")
    metrics: dict[str, Any] | None = Field(description="Clean and robust accuracies per eps, as evaluated.")
