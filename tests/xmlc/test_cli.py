import json

from typer.testing import CliRunner

from xmlc.cli import app

runner = CliRunner()


def test_train_eval_predict(tmp_path, corpus_files):
    out = tmp_path / "bundle"
    r = runner.invoke(
        app,
        [
            "train",
            "--train",
            str(corpus_files["train"]),
            "--out",
            str(out),
            "--labels",
            str(corpus_files["labels"]),
            "--branching",
            "4",
            "--leaf-size",
            "8",
            "--jobs",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "manifest.json").is_file()

    r = runner.invoke(app, ["eval", "--bundle", str(out), "--data", str(corpus_files["test"]), "--json"])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    for key in ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5", "PSnDCG@5", "R@10"):
        assert key in metrics
    assert metrics["P@1"] > 90 and metrics["n_docs"] == 300

    r = runner.invoke(app, ["eval", "--bundle", str(out), "--data", str(corpus_files["test"])])
    assert r.exit_code == 0 and "PSP" in r.output

    r = runner.invoke(app, ["predict", "--bundle", str(out), "--text", "wa wb wc wd we wf", "-k", "3"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert len(answer["labels"]) == 3 and answer["labels"][0]["id"] == "L0"
    assert answer["labels"][0]["name"] == "label 0 (topic 0)"


def test_train_reports_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "a b", "labels": ["x"]}\n{"id": "2", "text": "c", "labels": []}\n')
    r = runner.invoke(app, ["train", "--train", str(bad), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2
    assert f"{bad}:2:" in r.output


def test_eval_refuses_missing_bundle(tmp_path, corpus_files):
    r = runner.invoke(app, ["eval", "--bundle", str(tmp_path / "none"), "--data", str(corpus_files["test"])])
    assert r.exit_code == 2 and "not a bundle" in r.output


def test_unknown_method(tmp_path, corpus_files):
    r = runner.invoke(
        app,
        ["train", "--train", str(corpus_files["train"]), "--out", str(tmp_path / "x"), "--method", "magic"],
    )
    assert r.exit_code == 2 and "unknown method" in r.output


def test_serve_refuses_a_missing_bundle_in_one_line(tmp_path):
    r = runner.invoke(app, ["serve", "--bundle", str(tmp_path / "none")])
    assert r.exit_code == 2
    assert "not a bundle folder" in r.output and "Traceback" not in r.output


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("xmlc ")


def test_batch_predict_from_a_file_keeps_ids_and_never_overwrites(tree_bundle, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [
        {"id": "a1", "text": "wa wb wc"},
        {"id": "a2", "title": "wd we", "text": ""},
        {"id": "a3", "title": "t", "text": "wf wg", "labels": ["L1"]},
    ]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out.jsonl"
    once = ["predict", "--bundle", str(tree_bundle), "--input", str(src), "--output", str(out)]
    r = runner.invoke(app, once)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in rows] == ["a1", "a2", "a3"]
    assert all(len(x["labels"]) == 5 and {"id", "name", "score"} <= set(x["labels"][0]) for x in rows)
    r = runner.invoke(app, once)
    assert r.exit_code == 2 and "--force" in r.output
    src.write_text(src.read_text() + "{not json\n")
    args = ["predict", "--bundle", str(tree_bundle), "--input", str(src), "--output", str(out), "--force"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and f"{src}:4" in r.output and "not written" in r.output
    assert len(out.read_text().splitlines()) == 3  # the earlier output is still whole
    r = runner.invoke(app, [*args, "--skip-bad"])
    assert r.exit_code == 0 and f"{src}:4" in r.output


def test_info_describes_a_bundle(tree_bundle, tmp_path):
    r = runner.invoke(app, ["info", str(tree_bundle)])
    assert r.exit_code == 0, r.output
    assert (
        "method   tree" in r.output
        and "labels   64" in r.output
        and "parts    featurizer tfidf, shortlister tree" in r.output
    )
    r = runner.invoke(app, ["info", str(tmp_path)])
    assert r.exit_code == 2 and "not a bundle" in r.output


def test_train_skip_bad_says_which_lines(tmp_path, corpus_files):
    import gzip

    data = tmp_path / "train.jsonl"
    with gzip.open(corpus_files["train"], "rt") as f:
        good = f.read()
    data.write_text(good + "{broken\n")
    n = len(good.splitlines())
    args = ["train", "--train", str(data), "--out", str(tmp_path / "b"), "--method", "tree", "--jobs", "1"]
    r = runner.invoke(app, [*args, "--skip-bad", "--branching", "4", "--leaf-size", "8"])
    assert r.exit_code == 0, r.output
    assert f"skipped 1 malformed lines: {data}:{n + 1}:" in r.output


def test_predict_warns_when_no_word_is_known(tree_bundle):
    r = runner.invoke(app, ["predict", "--bundle", str(tree_bundle), "--text", "🙂 🎉 zzzunknown"])
    assert r.exit_code == 0, r.output
    assert "no word" in json.loads(r.output)["warning"]
    r = runner.invoke(app, ["predict", "--bundle", str(tree_bundle), "--text", "wa wb wc"])
    assert "warning" not in json.loads(r.output)
