"""The corpus-shape benchmark's table: the default's gap to the better fixed method, per corpus."""

from __future__ import annotations

from bench.bench_shapes import table


def test_the_table_gives_the_default_its_gap_to_the_better_of_tree_and_tree_ranker():
    def row(shape, system, p1, p5, chose):
        return {
            "shape": shape,
            "system": system,
            "P@1": p1,
            "P@5": p5,
            "chose": chose,
            "wall_s": 1,
            "cpu_s": 2,
        }

    rows = [
        row("short", "tree", 60.5, 40.0, "tree"),
        row("short", "tree+ranker", 54.1, 41.0, "tree+ranker"),
        row("short", "default", 60.4, 41.2, "tree+ranker (blend 0.75)"),
        row("long", "tree", 90.0, 70.0, "tree"),
    ]
    lines = table(rows).splitlines()
    assert lines[2].startswith("| long | tree |")  # the shapes' order, whatever the rows' order
    assert "| short | default | tree+ranker (blend 0.75) | 60.40 | 41.20 | -0.10 / +0.20 |" in lines[-1]
    assert len(lines) == 2 + 4
