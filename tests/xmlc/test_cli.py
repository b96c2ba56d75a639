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
