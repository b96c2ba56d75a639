"""AttentionXML-like shortlister-and-ranker: a BiLSTM with label-wise attention over a shallow label tree.

Run with onnxruntime only. A document's known words (the featurizer's vocabulary, mapped to the model's
word ids) go through ``attention_encoder.onnx`` (embedding + BiLSTM) once; ``attention_clusters.onnx``
scores every cluster of the tree's first level with its own attention over the hidden states, and
``attention_labels.onnx`` scores the labels of the best ``beam`` clusters the same way. A label's score is
its cluster's probability times its own, as in AttentionXML. It reads a batch's word ids
(`xmlc.batch.Batch.words`) and needs no ranker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.special import expit

from xmlc.batch import Batch
from xmlc.onnx_session import OnnxSession, export_info_of
from xmlc.topk import cluster_shortlist

ENCODER_FILE = "attention_encoder.onnx"
CLUSTER_FILE = "attention_clusters.onnx"
LABEL_FILE = "attention_labels.onnx"
CONFIG_FILE = "attention.json"
WORDS_FILE = "attention_words.npy"
MEMBERS_FILE = "attention_members.npy"
FILES = (ENCODER_FILE, CLUSTER_FILE, LABEL_FILE, CONFIG_FILE, WORDS_FILE, MEMBERS_FILE)
CHUNK_DOCS = 64  # documents per onnxruntime call: bounds (docs x candidates x words) attention weights


@dataclass(frozen=True)
class AttentionConfig:
    """What the exported graphs expect; saved beside them."""

    max_len: int  # words per document (longer ones are cut, shorter ones padded with 0)
    n_words: int  # model word ids are 1..n_words; 0 is padding
    n_clusters: int
    n_labels: int
    beam: int = 10  # clusters whose labels are scored


def pad_word_ids(sequences: Sequence[np.ndarray], word_map: np.ndarray, max_len: int) -> np.ndarray:
    """(docs x max_len) model word ids from vocabulary ids: words the model keeps, in text order, cut at
    ``max_len`` or padded with 0. Serving and training both build the model's input with it."""
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for r, seq in enumerate(sequences):
        ids = word_map[seq]
        ids = ids[ids > 0][:max_len]
        out[r, : len(ids)] = ids
    return out


class AttentionShortlister:
    """Words -> scored labels; the ``attention`` kind of bundle (it scores its own shortlist)."""

    kind: ClassVar[str] = "attention"
    role: ClassVar[str] = "shortlister"
    needs_ranker: ClassVar[bool] = False
    n_features: int | None = None  # reads word ids, not TF-IDF rows

    def __init__(
        self,
        encoder: OnnxSession,
        clusters: OnnxSession,
        labels: OnnxSession,
        word_map: np.ndarray,
        members: np.ndarray,
        config: AttentionConfig,
        export_info: dict[str, Any] | None = None,
    ) -> None:
        if members.shape[0] != config.n_clusters:
            raise ValueError(f"{MEMBERS_FILE} has {members.shape[0]} clusters, expected {config.n_clusters}")
        if int(word_map.max(initial=0)) > config.n_words:
            raise ValueError(f"{WORDS_FILE} maps to word ids above {config.n_words}")
        self.encoder, self.clusters, self.labels = encoder, clusters, labels
        self.word_map = word_map.astype(np.int64)
        self.members = members.astype(np.int64)  # cluster x max size, -1 pads
        self.config = config
        self.n_labels = config.n_labels
        self.export_info = dict(export_info or {})

    def shortlist(self, batch: Batch, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels of the best clusters with their final scores (``depth`` is the beam's to decide)."""
        return self.score(pad_word_ids(batch.words(), self.word_map, self.config.max_len))

    def score(self, word_ids: np.ndarray, beam: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Candidate labels (-1 pads) and their final scores, for padded word ids."""
        beam = beam or self.config.beam
        cands, scores = [], []
        every = np.arange(self.config.n_clusters, dtype=np.int64)
        for start in range(0, len(word_ids), CHUNK_DOCS):
            ids = word_ids[start : start + CHUNK_DOCS]
            hidden = self.encoder.run(word_ids=ids)
            all_clusters = np.broadcast_to(every, (len(ids), len(every))).copy()
            c_logit = self.clusters.run(hidden=hidden, word_ids=ids, cand_ids=all_clusters)
            cand, c_prob = cluster_shortlist(c_logit, self.members, beam)
            l_logit = self.labels.run(hidden=hidden, word_ids=ids, cand_ids=np.maximum(cand, 0))
            score = np.where(cand >= 0, c_prob * expit(l_logit), -1.0).astype(np.float32)
            cands.append(cand)
            scores.append(score)
        if not cands:
            return np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32)
        return np.concatenate(cands), np.concatenate(scores)

    def save(self, folder: Path) -> list[str]:
        self.encoder.save(folder / ENCODER_FILE)
        self.clusters.save(folder / CLUSTER_FILE)
        self.labels.save(folder / LABEL_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        np.save(folder / WORDS_FILE, self.word_map, allow_pickle=False)
        np.save(folder / MEMBERS_FILE, self.members, allow_pickle=False)
        return list(FILES)

    def meta(self) -> dict[str, Any]:
        return {**asdict(self.config), **self.export_info}

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any] | None = None) -> AttentionShortlister:
        config = AttentionConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        return cls(
            OnnxSession(folder / ENCODER_FILE),
            OnnxSession(folder / CLUSTER_FILE),
            OnnxSession(folder / LABEL_FILE),
            np.load(folder / WORDS_FILE, allow_pickle=False),
            np.load(folder / MEMBERS_FILE, allow_pickle=False),
            config,
            export_info_of(meta),
        )
