"""X-Transformer-like matcher: a transformer encoder maps raw text to label clusters (onnxruntime only).

The text is cut into word pieces by the encoder's own tokenizer (``tokenizers``, from its
``tokenizer.json``) and padded to a fixed length, so a document scores the same alone or in a batch.
``matcher.onnx`` holds the fine-tuned encoder, its mean pooling and the cluster head. The labels of the
best ``beam`` clusters, with their cluster's probability as the prior, are the shortlist that the ONNX
ranker then scores. It reads a batch's bodies as plain text (`xmlc.batch.Batch.bodies`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xmlc.batch import Batch
from xmlc.onnx_session import OnnxSession, export_info_of
from xmlc.topk import cluster_shortlist

MATCHER_FILE = "matcher.onnx"
TOKENIZER_FILE = "matcher_tokenizer.json"
CONFIG_FILE = "matcher.json"
MEMBERS_FILE = "matcher_members.npy"
FILES = (MATCHER_FILE, TOKENIZER_FILE, CONFIG_FILE, MEMBERS_FILE)
CHUNK_DOCS = 32


@dataclass(frozen=True)
class MatcherConfig:
    max_len: int  # word pieces per document, [CLS] and [SEP] included
    n_clusters: int
    n_labels: int
    beam: int = 8  # clusters whose labels are shortlisted
    pad_id: int = 0


def load_tokenizer(tokenizer_json: str, max_len: int, pad_id: int = 0) -> Any:
    """A ``tokenizers.Tokenizer`` that cuts at ``max_len`` pieces and pads to exactly ``max_len``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(length=max_len, pad_id=pad_id)
    return tok


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(docs x max_len) int64 piece ids and attention mask."""
    if not texts:
        n = tokenizer.truncation["max_length"] if tokenizer.truncation else 1
        return np.zeros((0, n), np.int64), np.zeros((0, n), np.int64)
    enc = tokenizer.encode_batch(list(texts))
    ids = np.asarray([e.ids for e in enc], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
    return ids, mask


class TransformerMatcher:
    """Text -> label clusters -> their labels as the shortlist, with the cluster's probability."""

    kind: ClassVar[str] = "transformer"
    role: ClassVar[str] = "shortlister"
    needs_ranker: ClassVar[bool] = True  # labels of a cluster share one score: the ranker orders them
    n_features: int | None = None  # reads the text itself

    def __init__(
        self,
        session: OnnxSession,
        tokenizer_json: str,
        members: np.ndarray,
        config: MatcherConfig,
        export_info: dict[str, Any] | None = None,
    ) -> None:
        if members.shape[0] != config.n_clusters:
            raise ValueError(f"{MEMBERS_FILE} has {members.shape[0]} clusters, expected {config.n_clusters}")
        self.session, self.members, self.config = session, members, config
        self.tokenizer_json = tokenizer_json
        self.tokenizer = load_tokenizer(tokenizer_json, config.max_len, config.pad_id)
        self.n_labels = config.n_labels
        self.export_info = dict(export_info or {})

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = np.zeros((len(ids), self.config.n_clusters), np.float32)
        for start in range(0, len(ids), CHUNK_DOCS):
            rows = slice(start, start + CHUNK_DOCS)
            out[rows] = self.session.run(input_ids=ids[rows], attention_mask=mask[rows])
        return out

    def shortlist(self, batch: Batch, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidate labels (-1 pads) and priors (``depth`` is the beam's to decide)."""
        return self.match(batch.bodies())

    def match(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Candidate labels (-1 pads) and priors for raw texts."""
        ids, mask = encode_texts(self.tokenizer, texts)
        return cluster_shortlist(self.logits(ids, mask), self.members, self.config.beam)

    def save(self, folder: Path) -> list[str]:
        self.session.save(folder / MATCHER_FILE)
        (folder / TOKENIZER_FILE).write_text(self.tokenizer_json)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        np.save(folder / MEMBERS_FILE, self.members.astype(np.int64), allow_pickle=False)
        return list(FILES)

    def meta(self) -> dict[str, Any]:
        return {**asdict(self.config), **self.export_info}

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any] | None = None) -> TransformerMatcher:
        config = MatcherConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        return cls(
            OnnxSession(folder / MATCHER_FILE),
            (folder / TOKENIZER_FILE).read_text(),
            np.load(folder / MEMBERS_FILE, allow_pickle=False),
            config,
            export_info_of(meta),
        )
