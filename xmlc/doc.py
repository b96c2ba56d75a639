"""`Doc`: one document as the models read it, a title and a text (or given features), from the readers and
the API alike.

Why a type of its own: the featurizer reads the title twice, once with the text and once as a field of
its own, and the service's cache key must change exactly when what the model reads changes. Both read
the two fields from here (`body` and `heading`) instead of re-deriving the title from a line break.
"""

from __future__ import annotations

from dataclasses import dataclass

FeatureRow = tuple[tuple[int, ...], tuple[float, ...]]  # (feature ids, values)


@dataclass(frozen=True, slots=True)
class Doc:
    """A text and an optional title, or a given feature vector (Extreme Classification Repository data,
    read by a `xmlc.given_features.GivenFeatures` bundle); the readers and the API refuse a document
    with none of them."""

    text: str
    title: str = ""
    features: FeatureRow | None = None

    @property
    def clean_title(self) -> str:
        """The title with its runs of whitespace (line breaks included) made one space."""
        return " ".join(self.title.split())

    @property
    def body(self) -> str:
        """What the text vocabulary reads: the title on a line of its own in front of the text."""
        title = self.clean_title
        if not title:
            return self.text
        return f"{title}\n{self.text}" if self.text else title

    @property
    def heading(self) -> str:
        """What the title field reads: the title, or for a document without one its text's first line."""
        title = self.clean_title
        if title:
            return title
        end = self.text.find("\n")
        return self.text if end < 0 else self.text[:end]

    def normalised(self) -> tuple[str, str]:
        """(heading, body) with whitespace runs made one space: equal pairs always get equal answers.

        Tokens never contain whitespace, so the models cannot tell such documents apart; a title and a
        first line of text are told apart only through `heading`, which keeps them distinct.
        """
        return " ".join(self.heading.split()), " ".join(self.body.split())
