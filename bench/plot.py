"""The comparison plot: accuracy (P@5) against single-document latency, one point per method."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_accuracy_vs_latency(
    rows: list[dict[str, Any]], path: Path, metric: str = "P@5", title: str = "EURLEX57K dev"
) -> Path:
    """Write a PNG scatter of ``metric`` against 1-doc p50 latency (log scale); peers drawn apart."""
    import matplotlib

    matplotlib.use("Agg")  # no screen here, and none needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for r in rows:
        ours = r["name"].startswith("xmlc")
        x, y = r["single_p50_ms"], r["metrics"][metric]
        ax.scatter([x], [y], marker="o" if ours else "s", s=46, color="tab:blue" if ours else "tab:red")
        ax.annotate(
            r["name"].removeprefix("xmlc "), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8
        )
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor tick labels overlap on a short log axis
    ax.margins(x=0.25, y=0.08)
    ax.set_xlabel(
        "single-document p50 latency, ms (log scale)\nours from raw text, peers from a ready TF-IDF row"
    )
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"{title}: {metric} against latency (blue: xmlc methods, red: peers)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
