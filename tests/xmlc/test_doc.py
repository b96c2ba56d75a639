"""`Doc`: what the text vocabulary reads (body) and what the title field reads (heading)."""

from __future__ import annotations

from xmlc.data import LabelRecord
from xmlc.doc import Doc


def test_body_puts_the_title_on_a_line_before_the_text() -> None:
    assert Doc("the text", "A  title\nwith break").body == "A title with break\nthe text"
    assert Doc("the text").body == "the text"
    assert Doc("", "only title").body == "only title"
    assert Doc("text", "   ").body == "text"  # a blank title is no title


def test_heading_is_the_title_or_the_first_line_of_a_text_without_one() -> None:
    assert Doc("first line\nsecond", "The  title").heading == "The title"
    assert Doc("first line\nsecond").heading == "first line"
    assert Doc("one line only").heading == "one line only"
    assert Doc("\nstarts with a break").heading == ""


def test_normalised_keeps_heading_and_body_apart() -> None:
    # A title word moved into the text changes what the title field reads: different pairs.
    assert Doc("wb wc", "wa").normalised() != Doc("wa wb wc").normalised()
    # Whitespace the models never see does not count; a title and a first line of text are the same.
    assert Doc("wb \t wc", " wa ").normalised() == Doc("wb wc", "wa").normalised()
    assert Doc("wb wc", "wa").normalised() == Doc("wa\nwb  wc").normalised()


def test_label_record_doc_is_the_name_then_the_alternative_names() -> None:
    doc = LabelRecord("3", "adhesive", ("glue", "paste")).doc
    assert doc.heading == "adhesive" and doc.body == "adhesive\nglue\npaste"
    assert LabelRecord("4", "plain").doc.body == "plain"
