"""The training report: label coverage, held-out scores, and a ranker kept only where it helps."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from training.report import PRIOR_WEIGHTS, choose_stages, coverage, format_report
from training.train import split_holdout
from xmlc.cli import app
from xmlc.data import Document, read_documents
from xmlc.loader import load_model
from xmlc.pipeline import Pipeline


def _doc(labels: list[str]) -> Document:
    return Document("d", "some text", labels=tuple(labels))


def test_coverage_counts_labels_no_document_carries():
    docs = [_doc(["a", "b"]), _doc(["a"]), _doc(["a", "c"])]
    cov = coverage(docs, ["a", "b", "c", "d", "e"])
    assert (cov["labels_seen"], cov["labels_never_seen"]) == (3, 2)
    assert cov["never_seen_examples"] == ["d", "e"]
    assert cov["docs_per_label"] == {"median": 1.0, "max": 3, "share_1_to_10": 1.0}
    assert cov["labels_per_doc"] == 1.67
    text = format_report({"coverage": cov})
    assert "3 of 5 seen" in text and "2 labels have no training document" in text


def test_holdout_is_seeded_and_disjoint():
    docs = [_doc([str(i)]) for i in range(100)]
    fit, held = split_holdout(docs, 0.1, seed=3)
    assert len(fit) == 90 and len(held) == 10
    assert {d.labels[0] for d in fit}.isdisjoint({d.labels[0] for d in held})
    assert [d.labels for d in split_holdout(docs, 0.1, seed=3)[1]] == [d.labels for d in held]


class Reversed:
    """The bundle's own ranker with its order turned upside down: a ranker that only does harm."""

    def __init__(self, ranker):
        self.inner = ranker

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def rank(self, batch, cand, prior):
        return -self.inner.rank(batch, cand, prior)

    def with_prior_weight(self, weight):
        return Reversed(self.inner.with_prior_weight(weight))


def test_a_ranker_that_hurts_is_dropped_and_one_that_helps_is_kept(ranker_bundle, corpus_files):
    valid, _ = read_documents(corpus_files["test"])
    model = load_model(ranker_bundle)
    assert isinstance(model, Pipeline) and model.ranker is not None
    kept, choice = choose_stages(model, valid)
    blends = [f"tree+ranker blend {w:g}" for w in PRIOR_WEIGHTS[1:]]
    assert set(choice["stages"]) == {"tree+ranker", *blends, "tree"}
    assert kept.kind == choice["kept"]
    best = max(choice["stages"].values(), key=lambda s: s["P@1"] + s["P@5"])
    assert choice["held_out"]["P@1"] + choice["held_out"]["P@5"] == best["P@1"] + best["P@5"]
    if choice["stages"]["tree+ranker"]["P@5"] > choice["stages"]["tree"]["P@5"] + 1:
        assert kept.ranker is not None
    bad = Pipeline(model.featurizer, model.shortlister, model.labels, Reversed(model.ranker), model.manifest)
    kept, choice = choose_stages(bad, valid)
    assert kept.kind == "tree" and kept.ranker is None and "dropped" in choice["why"]
    assert choice["held_out"] == choice["stages"]["tree"]


def test_train_with_valid_writes_the_report_in_the_bundle(tmp_path, corpus_files):
    out = tmp_path / "b"
    args = ["train", "--train", str(corpus_files["train"]), "--out", str(out), "--method", "tree+ranker"]
    args += ["--branching", "4", "--leaf-size", "8", "--dim", "16", "--epochs", "2", "--candidates", "16"]
    r = CliRunner().invoke(app, [*args, "--valid", str(corpus_files["test"]), "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "held-out tree+ranker" in r.output and "held-out tree " in r.output and "kept" in r.output
    manifest = json.loads((out / "manifest.json").read_text())
    report = manifest["report"]
    assert report["coverage"]["labels_seen"] == 64 and report["held_out_source"].endswith("test.jsonl")
    assert manifest["kind"] == report["choice"]["kept"]
    choice = report["choice"]
    assert np.isclose(choice["held_out"]["P@1"], choice["stages"][manifest["kind"]]["P@1"])
    info = CliRunner().invoke(app, ["info", str(out)])
    assert '"labels_seen": 64' in info.output
    r = CliRunner().invoke(app, [*args, "--holdout", "0.2", "--valid", str(corpus_files["test"]), "--force"])
    assert r.exit_code == 2 and "not both" in r.output


def test_train_with_holdout_chooses_then_refits_on_every_document(tmp_path, corpus_files):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(corpus_files["labels"].read_text() + '{"id": "ZZ", "name": "no document has it"}\n')
    args = ["train", "--train", str(corpus_files["train"]), "--method", "tree"]
    args += ["--labels", str(labels), "--branching", "4", "--leaf-size", "8", "--jobs", "1"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--holdout", "0.25"])
    assert r.exit_code == 0, r.output
    assert "1 labels have no training document" in r.output and "ZZ" in r.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["training"]["n_docs"] == 1200
    report = manifest["report"]
    assert report["held_out_source"] == "300 training documents held out (seed 0), then refitted on all 1200"
    assert report["choice"]["kept"] == "tree" and report["coverage"]["never_seen_examples"] == ["ZZ"]
    # The refit is the bundle trained on every document with the chosen settings, without a choice.
    weight = str(report["choice"]["title"]["title_weight"])
    r = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "plain"), "--holdout", "0", "--title-weight", weight]
    )
    assert r.exit_code == 0, r.output
    plain = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert plain["report"]["held_out_source"].startswith("none: ")
    assert plain["files"] == manifest["files"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "c"), "--holdout", "0.25", "--no-refit"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["training"]["n_docs"] == 900
    assert manifest["report"]["held_out_source"].endswith("held out (seed 0), not fitted on")


def test_a_share_is_held_out_by_default_only_where_there_is_a_choice(tmp_path, corpus):
    from training.methods import configure
    from training.train import train_bundle
    from xmlc.data import write_documents

    train, _, _ = corpus
    untitled = [Document(d.id, d.text, labels=d.labels) for d in train]
    write_documents(tmp_path / "untitled.jsonl", untitled)
    write_documents(tmp_path / "few.jsonl", train[:400])
    tree = configure("tree", {"branching": 4, "leaf_size": 8})
    # Nothing to choose: one tree on documents without titles is fitted once, on every document.
    result = train_bundle(tmp_path / "untitled.jsonl", tmp_path / "a", tree, n_jobs=1, progress=False)
    assert "choice" not in result.report and result.n_docs == len(train)
    assert result.report["held_out_source"].startswith("none: the method has nothing to choose")
    result = train_bundle(tmp_path / "few.jsonl", tmp_path / "b", tree, n_jobs=1, progress=False)
    assert result.report["held_out_source"].startswith("none: fewer than 1,000 documents")
    # The default method on enough documents: a tenth held out, the choice made, all refitted.
    small = configure(
        "tree+ranker", {"branching": 4, "leaf_size": 8, "dim": 16, "epochs": 1, "n_candidates": 16}
    )
    result = train_bundle(tmp_path / "untitled.jsonl", tmp_path / "c", small, n_jobs=1, progress=False)
    n = len(train)
    assert (
        result.report["held_out_source"]
        == f"{n // 10} training documents held out (seed 0), then refitted on all {n}"
    )
    choice = result.report["choice"]
    assert result.manifest["kind"] == choice["kept"] and result.n_docs == n
    if choice["prior_weight"] is None:  # dropped: the refit trained the three trees only
        assert (
            result.manifest["method"] == "tree" and result.manifest["train_params"]["model"]["n_trees"] == 3
        )
    else:
        assert result.manifest["ranker"]["prior_weight"] == choice["prior_weight"]


def test_a_dropped_ranker_refits_the_trees_alone():
    from training.methods import configure
    from training.train import chosen_params

    params = configure("tree+ranker", {"n_trees": 2})
    assert chosen_params(params, {"prior_weight": 0.25}) is params
    assert chosen_params(params, None) is params
    trees = chosen_params(params, {"prior_weight": None})
    assert trees.method == "tree" and trees.model == params.model.tree and trees.model.n_trees == 2


def test_a_misleading_title_field_is_turned_off_on_held_out_data(tmp_path):
    from dataclasses import replace

    from training.methods import configure
    from training.train import train_bundle
    from xmlc.data import write_documents
    from xmlc.synthetic import SyntheticSpec, make_corpus

    docs, _ = make_corpus(SyntheticSpec(n_docs=1500, n_labels=64, doc_len=20, noise=0.8, seed=3))
    train, test = docs[:1200], docs[1200:]
    rng = np.random.default_rng(0)

    def shuffled(docs):  # every title taken from another random document: it names the wrong labels
        titles = [d.title for d in docs]
        return [replace(d, title=titles[i]) for d, i in zip(docs, rng.permutation(len(docs)), strict=True)]

    write_documents(tmp_path / "train.jsonl", shuffled(train))
    write_documents(tmp_path / "valid.jsonl", shuffled(test))
    params = configure("tree", {"branching": 4, "leaf_size": 8})
    result = train_bundle(
        tmp_path / "train.jsonl", tmp_path / "b", params, valid_path=tmp_path / "valid.jsonl", progress=False
    )
    title = result.report["choice"]["title"]
    assert set(title["scores"]) == {"1.0", "0.0"} and title["title_weight"] == 0.0
    assert title["scores"]["0.0"]["P@5"] > title["scores"]["1.0"]["P@5"]
    assert result.manifest["train_params"]["featurizer"]["title_weight"] == 0.0
    assert "title    weight 0: no title field" in format_report(result.report)
    # Titles that name the labels (as a catalogue's subject line would): the field helps and stays.
    write_documents(tmp_path / "train.jsonl", [replace(d, title=" ".join(d.labels)) for d in train])
    write_documents(tmp_path / "valid.jsonl", [replace(d, title=" ".join(d.labels)) for d in test])
    out = tmp_path / "b2"
    result = train_bundle(
        tmp_path / "train.jsonl", out, params, valid_path=tmp_path / "valid.jsonl", progress=False
    )
    assert result.report["choice"]["title"]["title_weight"] == 1.0


def test_a_small_held_out_share_is_not_refitted_unless_asked(tmp_path, corpus_files):
    from training.methods import configure
    from training.train import train_bundle

    tree = configure("tree", {"branching": 4, "leaf_size": 8})
    args = {"n_jobs": 1, "progress": False, "holdout": 0.015}  # 18 of 1,200 documents: 2% or less
    result = train_bundle(corpus_files["train"], tmp_path / "a", tree, **args)
    assert result.n_docs == 1182 and result.report["held_out_source"].endswith("not fitted on")
    result = train_bundle(corpus_files["train"], tmp_path / "b", tree, refit=True, **args)
    assert result.n_docs == 1200 and result.report["held_out_source"].endswith("refitted on all 1200")
