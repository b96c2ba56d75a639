"""The `xmlc` command line: train a bundle, evaluate it, predict with it, serve it.

The only module that reaches every package. Subcommands import what they run when they run: the method
registry (`training.methods`, free of torch and scikit-learn) names the ``--method`` choices, and the
training code itself loads only when `xmlc train` trains, so `xmlc predict`, `xmlc eval` and
`xmlc serve` work with only the serving dependencies installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from tqdm.auto import tqdm

from xmlc.bundle import BundleError
from xmlc.cli_bundle import ensemble, evaluate, fail, info, predict, skipped
from xmlc.data import DataError

T = TypeVar("T")

app = typer.Typer(
    help="Extreme multi-label text classification: train, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"xmlc {version('xmlc-serve')}")
        except PackageNotFoundError:
            typer.echo("xmlc (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Extreme multi-label text classification: train, evaluate, predict."""


def _method_help() -> str:
    from training.methods import METHODS

    return "Model: " + "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values()) + "."


@app.command()
def train(
    train: Annotated[
        Path,
        typer.Option(
            "--train", help="Training documents: JSON lines, or an XC file (features given); .gz ok."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    method: Annotated[str, typer.Option(metavar="METHOD", help=_method_help())] = "tree+ranker",
    labels: Annotated[
        Path | None, typer.Option(help="Label file ({id, name} JSON lines) for label names.")
    ] = None,
    branching: Annotated[
        int | None, typer.Option(help="Children per tree node (power of 2 when balanced).")
    ] = None,
    leaf_size: Annotated[int | None, typer.Option(help="Most labels in a leaf cluster.")] = None,
    trees: Annotated[int | None, typer.Option(help="Number of trees averaged.")] = None,
    c: Annotated[
        float | None, typer.Option("--C", help="Inverse regularisation of the node classifiers.")
    ] = None,
    beam_size: Annotated[int | None, typer.Option(help="Tree beam width at prediction time.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Ranker (or deep model) training epochs.")] = None,
    max_docs: Annotated[
        int | None, typer.Option(help="Deep models: train on a random subset of this many documents.")
    ] = None,
    dim: Annotated[int | None, typer.Option(help="Ranker embedding width (label-space rank).")] = None,
    candidates: Annotated[
        int | None, typer.Option(help="Shortlist depth the ranker scores (training and serving).")
    ] = None,
    max_features: Annotated[int | None, typer.Option(help="Vocabulary cap of the TF-IDF featurizer.")] = None,
    title_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Weight of the title field: each document's title featurized again with its own "
            "vocabulary; 0 turns it off.",
        ),
    ] = None,
    label_text: Annotated[
        bool | None,
        typer.Option(
            "--label-text/--no-label-text",
            help="With --labels: train the trees on each label's name as one more document (default on).",
        ),
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Train label trees as sub-trees on Ray: 'local' (a cluster of --jobs processes here), "
            "'auto' or 'ray://HOST:10001' (a running cluster). Needs the 'distributed' extra."
        ),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option(help="Skip and count malformed lines instead of failing.")
    ] = False,
    valid: Annotated[
        Path | None,
        typer.Option(
            help="Held-out labelled documents: choose the title field and the ranker's blend on them."
        ),
    ] = None,
    holdout: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.49,
            help="Without --valid: this share of the training documents (seeded, at most 5,000) is set "
            "aside for the same choice. Default: 0.1 where there is a choice and 1,000+ documents; 0: none.",
        ),
    ] = None,
    refit: Annotated[
        bool | None,
        typer.Option(
            help="After choosing on the held-out share, fit the bundle again on every document (default: "
            "where over 2% of them was held out)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name recorded in the manifest.")] = None,
    force: Annotated[
        bool, typer.Option(help="Replace a bundle already at --out (never anything else).")
    ] = False,
) -> None:
    """Train a model from labelled documents and write it as a bundle; print what it learnt from."""
    from training.methods import configure
    from training.report import format_report
    from training.train import train_bundle

    given = {
        "branching": branching,
        "leaf_size": leaf_size,
        "n_trees": trees,
        "C": c,
        "beam_size": beam_size,
        "epochs": epochs,
        "max_docs": max_docs,
        "dim": dim,
        "n_candidates": candidates,
        "max_features": max_features,
        "title_weight": title_weight,
        "label_docs": label_text,
    }
    try:
        params = configure(method, {k: v for k, v in given.items() if v is not None})
        result = train_bundle(
            train,
            out,
            params,
            labels_path=labels,
            name=name,
            skip_bad=skip_bad,
            n_jobs=jobs,
            ray_address=ray,
            force=force,
            valid_path=valid,
            holdout=holdout,
            refit=refit,
        )
    except (DataError, BundleError, ValueError) as e:
        fail(str(e))
        return
    if result.n_skipped:
        typer.echo(f"skipped {result.n_skipped} malformed lines: {skipped(result)}", err=True)
    typer.echo(format_report(result.report))
    times = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    typer.echo(f"wrote {out} ({result.manifest['n_labels']} labels, {result.n_docs} docs; {times})")


app.command()(predict)
app.command()(info)
app.command()(ensemble)
app.command("eval")(evaluate)


@app.command()
def serve(
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Bundle folder (default: XMLC_BUNDLE).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL for the prediction cache.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes (default: one per core).")] = None,
) -> None:
    """Run the HTTP service under uvicorn (other settings: XMLC_* environment variables); on SIGTERM it
    drains: /ready turns 503, requests in flight are answered, then it exits."""
    from app.server import serve as run
    from app.settings import Settings
    from xmlc.bundle import read_manifest

    overrides: dict[str, Any] = {}
    if bundle is not None:
        overrides["bundle"] = bundle
    if redis_url:
        overrides["redis_url"] = redis_url
    if workers:
        overrides["workers"] = workers
    settings = Settings(**overrides)
    try:  # a missing or foreign bundle: one line, not a server's start-up traceback
        read_manifest(settings.bundle, verify=False)
    except BundleError as e:
        fail(f"{e} (serve --bundle FOLDER, or XMLC_BUNDLE)")
    run(settings, host, port)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the generated corpus and the bundle.")] = Path(
        "runs/demo"
    ),
    n_docs: Annotated[int, typer.Option(help="Generated documents (80% train, 20% test).")] = 3000,
    method: Annotated[str, typer.Option(help="Model to train (see `xmlc train --help`).")] = "tree+ranker",
) -> None:
    """Generate a corpus with a planted label structure, train on it, evaluate and predict once."""
    from training.methods import configure
    from training.train import train_bundle
    from xmlc.data import write_documents
    from xmlc.evaluation import evaluate_bundle
    from xmlc.loader import load_model
    from xmlc.synthetic import SyntheticSpec, make_corpus

    docs, names = make_corpus(SyntheticSpec(n_docs=n_docs))
    cut = int(len(docs) * 0.8)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_documents(data / "train.jsonl.gz", docs[:cut])
    write_documents(data / "test.jsonl.gz", docs[cut:])
    (data / "labels.jsonl").write_text(
        "".join(json.dumps({"id": i, "name": n}) + "\n" for i, n in names.items())
    )
    bundle = out / "bundle"
    # A small corpus: small trees and ranker (settings a method does not have are left alone).
    params = configure(method, {"branching": 4, "leaf_size": 8, "dim": 64}, strict=False)
    result = train_bundle(  # the demo's own bundle: a second run replaces it
        data / "train.jsonl.gz", bundle, params, labels_path=data / "labels.jsonl", name="demo", force=True
    )
    typer.echo(f"trained {bundle} in {result.timings['total']:.1f}s")
    report, _ = evaluate_bundle(bundle, data / "test.jsonl.gz", (1, 3, 5), (10,))
    typer.echo(report.format_table())
    sample = docs[cut]
    labels = load_model(bundle).predict([sample.doc], k=3)[0]
    typer.echo(f"document {sample.id} (true labels {', '.join(sample.labels)}):")
    for x in labels:
        typer.echo(f"  {x.id:>6}  {x.score:.3f}  {x.name}")


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder for train.jsonl.gz, test.jsonl.gz, labels.jsonl.gz.")],
    n_labels: Annotated[int, typer.Option(min=2, help="Labels of the corpus.")] = 10_000,
    n_docs: Annotated[int, typer.Option(min=0, help="Training documents (0: 0.73 per label).")] = 0,
    n_test: Annotated[int, typer.Option(min=0, help="Held-out documents.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same corpus.")] = 0,
    cover: Annotated[
        bool,
        typer.Option(help="The first training documents carry every label once (few documents, all labels)."),
    ] = False,
) -> None:
    """Write a generated corpus with a planted label structure at extreme scale (power-law labels)."""
    from dataclasses import replace

    from xmlc.data import atomic_text_writer, write_documents
    from xmlc.synthetic import ScaleCorpus, ScaleSpec

    spec = ScaleSpec(n_labels=n_labels, n_docs=n_docs, cover=cover, seed=seed)
    corpus = ScaleCorpus(spec)
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=spec.docs + n_test, desc="generate", unit="doc") as bar:
        write_documents(out / "train.jsonl.gz", _counted(corpus.documents(spec.docs, 1, "tr"), bar))
        held_out = ScaleCorpus(replace(spec, cover=False)) if cover else corpus  # the same tables
        write_documents(out / "test.jsonl.gz", _counted(held_out.documents(n_test, 2, "te"), bar))
    with atomic_text_writer(out / "labels.jsonl.gz") as fh:
        for label_id, name in corpus.label_names():
            fh.write(json.dumps({"id": label_id, "name": name}) + "\n")
    typer.echo(f"wrote {out}: {spec.docs} training and {n_test} held-out documents, {n_labels} labels")


@app.command()
def calibrate(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle folder.")],
    data: Annotated[
        Path, typer.Option("--data", help="Held-out labelled documents (not its training data).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Calibrated bundle to write (may be --bundle with --force).")
    ],
    depth: Annotated[int, typer.Option(min=1, help="Top labels per document the fit sees.")] = 10,
    force: Annotated[bool, typer.Option(help="Replace a bundle already at --out.")] = False,
    skip_bad: Annotated[bool, typer.Option(help="Skip and count malformed lines.")] = False,
) -> None:
    """Make scores probabilities: fit an isotonic map from raw score to precision on held-out documents
    and write the bundle with it (order unchanged; `threshold` then means a probability)."""
    from training.calibration import fit_calibration
    from xmlc.bundle import check_out
    from xmlc.data import read_labelled
    from xmlc.loader import load_model

    try:
        check_out(out, force)
        model = load_model(bundle)
        docs, truths = read_labelled(data, skip_bad)
        model.calibration = fit_calibration(model, docs, truths, depth)
        model.save(out, force)
    except (DataError, BundleError, ValueError) as e:
        fail(str(e))
        return
    info = model.calibration.info
    typer.echo(
        f"wrote {out}: calibrated on {len(docs)} documents; expected calibration error of the top-5 "
        f"scores on them {info['ece_top5_raw']:.3f} raw, {info['ece_top5_fit']:.3f} calibrated"
    )


@app.command()
def optimize(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle folder (calibrated first, ideally).")],
    data: Annotated[Path, typer.Option("--data", help="Held-out labelled documents.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle to write with the chosen defaults.")],
    max_k: Annotated[int, typer.Option(min=1, max=100, help="Largest k tried.")] = 10,
    force: Annotated[bool, typer.Option(help="Replace a bundle already at --out.")] = False,
    skip_bad: Annotated[bool, typer.Option(help="Skip and count malformed lines.")] = False,
) -> None:
    """Choose the k and score threshold of best F1 on held-out documents (as `annif optimize`) and store
    them as the bundle's defaults, used when a request or `xmlc predict` gives none."""
    from training.calibration import optimize as choose
    from xmlc.bundle import check_out
    from xmlc.data import read_labelled
    from xmlc.loader import load_model

    try:
        check_out(out, force)
        model = load_model(bundle)
        docs, truths = read_labelled(data, skip_bad)
        chosen, table = choose(model, docs, truths, max_k)
        model.manifest["defaults"] = chosen
        model.save(out, force)
    except (DataError, BundleError, ValueError) as e:
        fail(str(e))
        return
    typer.echo("   k  best threshold      P      R     F1")
    for k in range(1, max_k + 1):
        row = max((r for r in table if r["k"] == k), key=lambda r: r["F1"])
        p, r, f1 = (100 * row[m] for m in ("P", "R", "F1"))
        typer.echo(f"{k:>4}  {row['threshold']:>14.2f}  {p:5.2f}  {r:5.2f}  {f1:5.2f}")
    typer.echo(
        f"wrote {out}: defaults k={chosen['k']}, threshold={chosen['threshold']:.2f} "
        f"(F1 {100 * chosen['f1']:.2f} on {len(docs)} documents)"
    )


def _counted(items: Iterator[T], bar: tqdm) -> Iterator[T]:
    for item in items:
        bar.update(1)
        yield item


if __name__ == "__main__":
    app()
