"""The X-Transformer-like family on generated data: a tiny transformer (built here, offline) as matcher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from fastapi.testclient import TestClient  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from training.params import MatcherParams, RankerParams, TrainParams, XTransformerParams  # noqa: E402
from training.train import train_bundle  # noqa: E402
from training.xtransformer import encoder_folder  # noqa: E402
from xmlc.evaluation import evaluate_model  # noqa: E402
from xmlc.loader import load_model  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_encoder(folder: Path, texts: list[str]) -> Path:
    """A word-piece tokenizer trained on ``texts`` and a 2-layer BERT with random weights."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=600, special_tokens=SPECIAL))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def xtransformer_bundle(tmp_path_factory: pytest.TempPathFactory, corpus, corpus_files) -> Path:
    train, _, _ = corpus
    root = tmp_path_factory.mktemp("xtransformer")
    encoder = tiny_encoder(root / "encoder", [d.doc.body for d in train])
    matcher = MatcherParams(
        encoder=str(encoder), max_len=48, n_clusters=8, beam=3, epochs=4, max_docs=0, lr=1e-3, head_lr=1e-2
    )
    params = TrainParams("xtransformer", XTransformerParams(matcher, RankerParams(dim=32, epochs=6, lr=2e-3)))
    train_bundle(
        corpus_files["train"],
        root / "bundle",
        params,
        labels_path=corpus_files["labels"],
        n_jobs=1,
        progress=False,
        holdout=0,
    )
    return root / "bundle"


def test_xtransformer_learns_and_round_trips(xtransformer_bundle: Path, corpus) -> None:
    manifest = json.loads((xtransformer_bundle / "manifest.json").read_text())
    assert manifest["kind"] == "transformer+ranker" and manifest["method"] == "xtransformer"
    assert manifest["shortlister"]["parity_max_abs_diff"] <= 1e-4
    assert manifest["ranker"]["parity_max_abs_diff"] <= 1e-4
    _, test, _ = corpus
    texts, truths = [d.doc for d in test], [list(d.labels) for d in test]
    pipeline = load_model(xtransformer_bundle)
    report, _ = evaluate_model(pipeline, texts, truths)
    assert report.to_dict()["P@1"] > 50.0, report.to_dict()  # 64 labels: chance is under 2%
    res = pipeline.predict_batch(texts[:10], k=5)
    alone = pipeline.predict_batch(texts[4:5], k=5)
    np.testing.assert_array_equal(alone.indices[0], res.indices[4])
    assert np.all(np.diff(res.scores, axis=1) <= 0) and np.all((res.scores >= 0) & (res.scores <= 1))
    assert len(set(res.indices[0].tolist())) == 5


def test_xtransformer_bundle_serves_through_the_app(xtransformer_bundle: Path, corpus) -> None:
    _, test, _ = corpus
    settings = Settings(bundle=xtransformer_bundle, redis_url=None)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/predict", json={"documents": [{"text": test[0].text, "title": test[0].title}], "k": 2}
        )
        assert r.status_code == 200, r.text
        assert client.get("/model").json()["method"] == "xtransformer"


def test_encoder_folder_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an encoder folder"):
        encoder_folder(str(tmp_path))
