"""`xmlc` commands that only read bundles: predict (one text or a file), eval, info, ensemble.

Registered on the command line by `xmlc.cli`; the helpers `fail` and `skipped` serve both modules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm.auto import tqdm

from xmlc.bundle import BundleError
from xmlc.data import DataError


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def ensemble(
    member: Annotated[list[Path], typer.Option("--member", help="A member bundle (give two or more).")],
    out: Annotated[Path, typer.Option("--out", help="Ensemble bundle folder to write.")],
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weights, one per member (default: equal).")
    ] = None,
    depth: Annotated[int, typer.Option(help="Labels each member contributes per document.")] = 50,
    name: Annotated[str | None, typer.Option(help="Model name recorded in the manifest.")] = None,
    force: Annotated[
        bool, typer.Option(help="Replace a bundle already at --out (never anything else).")
    ] = False,
) -> None:
    """Combine bundles trained on the same labels into one ensemble bundle (weighted mean of scores)."""
    from xmlc.ensemble import Ensemble
    from xmlc.loader import load_model

    try:
        w = [float(x) for x in weights.split(",")] if weights else None
        model = Ensemble([load_model(m) for m in member], w, depth, {"name": name or out.name})
        manifest = model.save(out, force)
    except (BundleError, ValueError, OSError) as e:
        fail(str(e))
        return
    typer.echo(f"wrote {out} ({len(member)} members, version {manifest['version']})")


def predict(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle folder.")],
    text: Annotated[str | None, typer.Option(help="Document text; read from stdin when omitted.")] = None,
    title: Annotated[str, typer.Option(help="Optional document title.")] = "",
    k: Annotated[
        int | None,
        typer.Option("-k", "--k", min=1, max=1000, help="How many labels (default: the bundle's, or 5)."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Only labels scoring at least this (default: the bundle's, or none)."
        ),
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="Documents to label, JSON lines ({id, title, text}; .gz ok)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="With --input: JSON lines out, one a document, ids kept.")
    ] = None,
    force: Annotated[bool, typer.Option(help="With --output: replace an existing file.")] = False,
    skip_bad: Annotated[
        bool, typer.Option(help="With --input: skip and count malformed lines instead of failing.")
    ] = False,
) -> None:
    """Top-k labels for one document as JSON, or for every document of --input into --output."""
    from xmlc.doc import Doc
    from xmlc.loader import load_model
    from xmlc.model import UNRECOGNISED

    if (input_file is None) != (output is None):
        fail("--input and --output go together")
    if output is not None and output.exists() and not force:
        fail(f"{output}: exists; --force replaces it")
    body = ""
    if input_file is None:
        body = text if text is not None else sys.stdin.read()
        if not body.strip() and not title.strip():
            fail("the document is empty")
    try:
        model = load_model(bundle)
    except BundleError as e:
        fail(str(e))
        return
    k = k if k is not None else int(model.defaults.get("k", 5))
    threshold = threshold if threshold is not None else model.defaults.get("threshold")
    if input_file is not None and output is not None:
        _predict_file(model, input_file, output, k, threshold, skip_bad)
        return
    res = model.predict_batch([Doc(body, title)], k)
    labels = model.to_labels(res.indices, res.scores, threshold)[0]
    answer: dict[str, Any] = {
        "model": model.name,
        "version": model.version,
        "labels": [{"id": x.id, "name": x.name, "score": round(x.score, 6)} for x in labels],
    }
    if res.recognised is not None and not res.recognised[0]:
        answer["warning"] = UNRECOGNISED
    typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))


def _predict_file(
    model: Any, input_file: Path, output: Path, k: int, threshold: float | None, skip_bad: bool
) -> None:
    """Stream ``input_file`` through the model in chunks into ``output`` (written atomically)."""
    from itertools import islice

    from xmlc.data import ReadStats, atomic_text_writer, iter_documents

    stats = ReadStats()
    docs = iter_documents(input_file, require_labels=False, skip_bad=skip_bad, stats=stats)
    n = 0
    try:
        with atomic_text_writer(output) as out, tqdm(desc="predict", unit="doc", file=sys.stderr) as bar:
            while chunk := list(islice(docs, 256)):
                for d, labels in zip(chunk, model.predict([d.doc for d in chunk], k, threshold), strict=True):
                    rows = [{"id": x.id, "name": x.name, "score": round(x.score, 6)} for x in labels]
                    out.write(json.dumps({"id": d.id, "labels": rows}, ensure_ascii=False) + "\n")
                n += len(chunk)
                bar.update(len(chunk))
    except (DataError, OSError) as e:
        fail(f"{e} ({output} not written)")
    if stats.n_skipped:
        typer.echo(f"skipped {stats.n_skipped} malformed lines: {skipped(stats)}", err=True)
    typer.echo(f"wrote {output} ({n} documents, model {model.name} {model.version})", err=True)


def skipped(stats: Any) -> str:
    """Where the skipped lines were (the first few): anything with ``skipped`` and ``n_skipped``."""
    shown = "; ".join(stats.skipped[:5])
    return shown + (f" and {stats.n_skipped - 5} more" if stats.n_skipped > 5 else "")


def info(bundle: Annotated[Path, typer.Argument(help="Bundle folder.")]) -> None:
    """What a bundle is: name, version, method, labels, parts and sizes (its manifest, checksums verified)."""
    from xmlc.bundle import read_manifest

    try:
        m = read_manifest(bundle)
    except BundleError as e:
        fail(str(e))
        return
    size = sum(int(f.get("bytes", 0)) for f in m["files"].values())
    training = m.get("training", {})
    lines = [
        f"bundle   {bundle}",
        f"name     {m.get('name', '?')}  version {m['version']}  created {m.get('created_at', '?')}",
        f"method   {m.get('method', '?')}",
        f"labels   {m.get('n_labels', '?')}   features {m.get('n_features', '?')}",
        f"trained  on {training.get('n_docs', '?')} documents from {training.get('source', '?')}",
        f"files    {len(m['files'])}, {size / 1e6:.1f} MB",
    ]
    parts = [(role, m.get(role)) for role in ("featurizer", "shortlister", "ranker")]
    lines.append(
        "parts    " + ", ".join(f"{r} {p.get('kind', '?')}" for r, p in parts if isinstance(p, dict))
    )
    report = m.get("report")
    if isinstance(report, dict) and "coverage" in report:
        lines.append(json.dumps(report, indent=2, ensure_ascii=False))
    typer.echo("\n".join(lines))


def evaluate(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle folder.")],
    data: Annotated[
        Path, typer.Option("--data", help="Labelled documents to score (JSON lines or an XC file).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    ks: Annotated[str, typer.Option(help="Comma-separated k values.")] = "1,3,5",
    recall_ks: Annotated[str, typer.Option(help="k values of shortlist recall.")] = "10,50,100",
    prop_a: Annotated[float, typer.Option(help="Propensity parameter A (Jain et al.).")] = 0.55,
    prop_b: Annotated[float, typer.Option(help="Propensity parameter B (Jain et al.).")] = 1.5,
    skip_bad: Annotated[
        bool, typer.Option(help="Skip and count malformed lines instead of failing.")
    ] = False,
) -> None:
    """P@k, nDCG@k, PSP@k, PSnDCG@k and shortlist recall of a bundle on labelled documents."""
    from xmlc.evaluation import evaluate_bundle

    try:
        k_list = [int(k) for k in ks.split(",") if k.strip()]
        r_list = [int(k) for k in recall_ks.split(",") if k.strip()]
        report, info = evaluate_bundle(
            bundle, data, k_list, r_list, prop_a, prop_b, skip_bad, progress=sys.stderr.isatty()
        )
    except (DataError, BundleError, ValueError) as e:
        fail(str(e))
        return
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), **info}, indent=2))
    else:
        typer.echo(report.format_table())
        kind = "calibrated" if info["calibrated"] else "raw, not calibrated"
        typer.echo(f"expected calibration error of the top-5 scores ({kind}): {info['ece_top5']:.3f}")
        typer.echo(f"{info['docs_per_s']:.0f} docs/s")
