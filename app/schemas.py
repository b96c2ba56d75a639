"""Request and response bodies of the HTTP API (validated by pydantic; errors become 422)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xmlc.doc import Doc


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Document body.", examples=["Council regulation on fishing quotas"])
    title: str = Field(
        "",
        description="Optional title. Models read it with the text and again as a separate title field; "
        "without a title, the text's first line plays that part.",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty or only whitespace")
        return v

    @property
    def doc(self) -> Doc:
        return Doc(self.text, self.title)


class PredictRequest(BaseModel):
    """Either one document (``text``, optional ``title``) or a batch (``documents``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "Council regulation on fishing quotas", "k": 5},
                {"documents": [{"text": "first"}, {"text": "second"}], "k": 3},
            ]
        },
    )

    text: str | None = Field(None, description="One document's body.")
    title: str | None = Field(None, description="One document's title.")
    documents: list[DocumentIn] | None = Field(None, description="A batch of documents.")
    k: int = Field(5, ge=1, description="How many labels per document.")
    threshold: float | None = Field(None, description="Only labels scoring at least this.")

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        if (self.text is None) == (self.documents is None):
            raise ValueError("give either 'text' (one document) or 'documents' (a batch), not both")
        if self.text is not None and not self.text.strip():
            raise ValueError("text is empty or only whitespace")
        if self.documents is not None and self.title is not None:
            raise ValueError("'title' goes inside each document of 'documents'")
        if self.documents is not None and not self.documents:
            raise ValueError("'documents' is empty")
        return self

    def docs(self) -> list[Doc]:
        if self.documents is not None:
            return [d.doc for d in self.documents]
        assert self.text is not None
        return [Doc(self.text, self.title or "")]


class LabelOut(BaseModel):
    id: str
    name: str
    score: float


class DocumentResult(BaseModel):
    labels: list[LabelOut]


class PredictResponse(BaseModel):
    """``labels`` for a single document; ``results`` (one per document, in order) for a batch."""

    model: str
    version: str
    labels: list[LabelOut] | None = None
    results: list[DocumentResult] | None = None


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, object]]


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundle: str | None = Field(None, description="Bundle folder to load; default: the configured one.")


class ModelInfo(BaseModel):
    name: str
    version: str
    method: str
    n_labels: int
    n_features: int
    shortlister: dict[str, object]
    ranker: dict[str, object] | None
    created_at: str | None
    bundle: str
