"""Datasets and their images as the research API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime
    n_images: int


class DatasetUploaded(DatasetOut):
    created: bool = Field(description="False when the same content was uploaded before: that dataset is returned.")


class DatasetDetail(DatasetOut):
    by_label: dict[str, int] = Field(description="Images per class label.")
    by_split: dict[str, int] = Field(description="Images per split ('none' for images without one).")
    by_label_and_split: dict[str, dict[str, int]] = Field(description="label -> split -> images.")
    salience_images: dict[str, int] = Field(
        description="Images with at least one salience map of each source (imported, gradcam, human_mean)."
    )
    n_with_salience: int = Field(description="Images with a salience map of any source.")
    salience_coverage: float = Field(description="n_with_salience / n_images (0 for an empty dataset).")


class ImageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    dataset_id: int
    label: str
    split: str | None
    filename: str = Field(description="Path of the image inside the uploaded archive.")
    width: int
    height: int
    sha256: str
    salience_sources: list[str] = Field(description="Sources of the salience maps this image has.")
    file_url: str
