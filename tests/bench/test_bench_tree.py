"""bench/bench_tree.py: which run measured which row of a table."""

from __future__ import annotations

from bench.bench_tree import provenance


def test_provenance_names_this_run_and_every_kept_run() -> None:
    rows = [
        {"name": "PECOS XR-Linear", "measured": "2026-11-24 09:11", "run": "python -m bench.bench_tree A"},
        {"name": "xmlc tree", "measured": "2026-11-24 09:11", "run": "python -m bench.bench_tree A"},
        {"name": "xmlc bonsai", "measured": "2026-11-23 10:00"},
        {"name": "xmlc leml", "measured": "2026-11-24 12:00", "run": "python -m bench.bench_tree B"},
    ]
    text = provenance(rows, "2026-11-24 12:00", "python -m bench.bench_tree B")
    lines = text.split("\n\n")
    assert lines[0] == "Measured 2026-11-24 12:00 on a 2-core machine with `python -m bench.bench_tree B`."
    assert lines[1] == (
        "Kept from a run of 2026-11-24 09:11 with `python -m bench.bench_tree A` (`--resume`): "
        "PECOS XR-Linear, xmlc tree."
    )
    assert lines[2] == "Kept from a run of 2026-11-23 10:00 (`--resume`): xmlc bonsai."
    assert len(lines) == 3


def test_a_render_of_kept_rows_only_claims_no_new_measurement() -> None:
    rows = [{"name": "xmlc tree", "measured": "2026-11-24 09:11", "run": "python -m bench.bench_tree A"}]
    text = provenance(rows, "2026-11-24 12:00", "python -m bench.bench_tree --resume --peers ''")
    assert not text.startswith("Measured")
    assert "xmlc tree" in text
