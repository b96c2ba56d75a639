"""Request and response bodies of the HTTP API (validated by pydantic; errors become 422)."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from xmlc.data import parse_features
from xmlc.doc import Doc, FeatureRow

NOTHING = "the document has no words: give a non-blank 'text', 'title' or both (or 'features')"
FEATURES = Field(
    None,
    description="Given features, feature id -> value (for a bundle trained on feature vectors, e.g. an "
    "Extreme Classification Repository file); ids the bundle does not know are ignored.",
    examples=[{"12": 0.5, "907": 0.25}],
)


def _features(value: dict[str, float] | None) -> FeatureRow | None:
    return parse_features(value) if value is not None else None


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    _row: FeatureRow | None = PrivateAttr(None)
    text: str = Field(
        "", description="Document body (may be left out for a title alone).", examples=["Council regulation"]
    )
    title: str = Field(
        "",
        description="Optional title. Models read it with the text and again as a separate title field; "
        "without a title, the text's first line plays that part.",
    )
    features: dict[str, float] | None = FEATURES

    @model_validator(mode="after")
    def _not_blank(self) -> Self:
        self._row = _features(self.features)
        if not (self.text.strip() or self.title.strip() or self._row):
            raise ValueError(NOTHING)
        return self

    @property
    def doc(self) -> Doc:
        return Doc(self.text, self.title, self._row)


class PredictRequest(BaseModel):
    """Either one document (``text`` and/or ``title``) or a batch (``documents``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "Council regulation on fishing quotas", "k": 5},
                {"documents": [{"text": "first"}, {"text": "second"}], "k": 3},
            ]
        },
    )

    _row: FeatureRow | None = PrivateAttr(None)
    text: str | None = Field(None, description="One document's body.")
    title: str | None = Field(None, description="One document's title.")
    features: dict[str, float] | None = FEATURES
    documents: list[DocumentIn] | None = Field(None, description="A batch of documents.")
    k: int | None = Field(
        None, ge=1, description="How many labels per document (default: the bundle's choice, or 5)."
    )
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Only labels scoring at least this, 0 to 1 (default: the bundle's choice, or none; 0 "
        "turns a bundle's threshold off). With a calibrated bundle, scores are probabilities.",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        single = self.text is not None or self.title is not None or self.features is not None
        if self.documents is not None:
            if single:
                raise ValueError(
                    "give one document ('text', 'title', 'features') or a batch ('documents'), not both; "
                    "a title of a batch document goes inside it"
                )
            if not self.documents:
                raise ValueError("'documents' is empty")
            return self
        if not single:
            raise ValueError("nothing to label: give 'text' and/or 'title', or 'documents' (a batch)")
        self._row = _features(self.features)
        if not ((self.text or "").strip() or (self.title or "").strip() or self._row):
            raise ValueError(NOTHING)
        return self

    def docs(self) -> list[Doc]:
        if self.documents is not None:
            return [d.doc for d in self.documents]
        return [Doc(self.text or "", self.title or "", self._row)]


class LabelOut(BaseModel):
    id: str
    name: str
    score: float


class DocumentResult(BaseModel):
    labels: list[LabelOut]
    warning: str | None = Field(None, description="Set when the labels rest on no known word.")


class PredictResponse(BaseModel):
    """``labels`` for a single document; ``results`` (one per document, in order) for a batch."""

    model: str
    version: str
    labels: list[LabelOut] | None = None
    results: list[DocumentResult] | None = None
    warning: str | None = Field(None, description="One document: set when its labels rest on no known word.")


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
