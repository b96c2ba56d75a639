"""The featurizer's vocabulary as compiled lookups: texts to term counts in one numba call per batch.

Why: in Python a document costs a string per token, a dict lookup per token and a few numpy calls
(about 0.6 ms a EURLEX57K document, the largest share of a prediction). Here Python only lowercases and
joins the batch's texts and hands their code points (UTF-32) to one kernel, which finds the words,
looks each up in an open-addressing hash table of the vocabulary's words (checked character by
character, so a hash collision can never count a wrong term), matches bigrams as id pairs in a sorted
array, and counts each document's terms. The kernel releases the GIL.

Words are what ``re.findall(r"(?u)\\b\\w+\\b", text)`` finds: maximal runs of code points that Python's
regex calls word characters; the table of those is read off the regex itself, for every code point, so
both paths agree on all of Unicode (tests/xmlc/test_featurizer.py checks counts against the string
path on real and generated text).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import cache

import numpy as np
from numba import njit

N_CODE_POINTS = 0x110000
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@cache
def word_table() -> np.ndarray:
    """uint8 per code point: 1 where Python's ``\\w`` matches it (read off the regex, once a process)."""
    every = np.arange(N_CODE_POINTS, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    marked = re.sub(r"\W", "\x00", every).encode("utf-32-le", "surrogatepass")
    table = (np.frombuffer(marked, np.uint32) != 0).astype(np.uint8)
    table[0] = 0  # NUL is not a word character (it is the marker above)
    return table


def code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The texts' code points end to end (uint32, lone surrogates kept) and each text's bounds."""
    ptr = np.zeros(len(texts) + 1, np.int64)
    np.cumsum([len(t) for t in texts], out=ptr[1:])
    joined = "".join(texts).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(joined, np.uint32), ptr


@njit(cache=True, nogil=True, inline="always")
def _fnv(cps: np.ndarray, lo: int, hi: int) -> np.uint64:
    h = _FNV_OFFSET
    for i in range(lo, hi):
        h = (h ^ np.uint64(cps[i])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def _build(chars: np.ndarray, ptr: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing table (slot -> word id, -1 empty; linear probing) and every word's hash."""
    n = ptr.shape[0] - 1
    mask = (1 << bits) - 1
    table = np.full(1 << bits, -1, np.int32)
    hashes = np.empty(n, np.uint64)
    for w in range(n):
        h = _fnv(chars, ptr[w], ptr[w + 1])
        hashes[w] = h
        slot = np.int64(h & np.uint64(mask))
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = w
    return table, hashes


@njit(cache=True, nogil=True, inline="always")
def _mix(code: np.int64) -> np.uint64:
    """A bigram code's hash (the multiplier of Fibonacci hashing, then its high bits folded in)."""
    h = np.uint64(code) * np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(29))


@njit(cache=True, nogil=True)
def _build_pairs(codes: np.ndarray, terms: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing table of bigram codes (-1 empty) and their term ids, linear probing."""
    mask = (1 << bits) - 1
    keys = np.full(1 << bits, -1, np.int64)
    values = np.empty(1 << bits, np.int32)
    for j in range(codes.shape[0]):
        slot = np.int64(_mix(codes[j]) & np.uint64(mask))
        while keys[slot] >= 0 and keys[slot] != codes[j]:
            slot = (slot + 1) & mask
        keys[slot] = codes[j]  # a repeated code keeps its last term, as a dict would
        values[slot] = terms[j]
    return keys, values


@njit(cache=True, nogil=True, inline="always")
def _word_id(
    cps: np.ndarray, lo: int, hi: int, h: np.uint64, table: np.ndarray, hashes: np.ndarray,
    chars: np.ndarray, ptr: np.ndarray,
) -> int:  # fmt: skip
    """The id of the word ``cps[lo:hi]`` (hash ``h``), -1 when the vocabulary has no such word."""
    mask = table.shape[0] - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        w = table[slot]
        if w < 0:
            return -1
        if hashes[w] == h and ptr[w + 1] - ptr[w] == hi - lo:
            same = True
            for j in range(hi - lo):
                if chars[ptr[w] + j] != cps[lo + j]:
                    same = False
                    break
            if same:
                return w
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def _terms(
    cps: np.ndarray, lo: int, hi: int, is_word: np.ndarray, table: np.ndarray, hashes: np.ndarray,
    chars: np.ndarray, ptr: np.ndarray, unigram: np.ndarray, pair_keys: np.ndarray,
    pair_terms: np.ndarray, n_words: int, words: np.ndarray, out: np.ndarray,
) -> int:  # fmt: skip
    """Write the term ids of the text ``cps[lo:hi]`` to ``out`` (unigrams in text order, then bigrams);
    returns how many. ``words`` is scratch of at least ``hi - lo`` slots."""
    n = 0
    i = lo
    while i < hi:  # the words, as vocabulary word ids (-1 unknown)
        if is_word[cps[i]] == 0:
            i += 1
            continue
        start = i
        h = _FNV_OFFSET
        while i < hi and is_word[cps[i]] != 0:
            h = (h ^ np.uint64(cps[i])) * _FNV_PRIME
            i += 1
        words[n] = _word_id(cps, start, i, h, table, hashes, chars, ptr)
        n += 1
    m = 0
    for j in range(n):
        if words[j] >= 0 and unigram[words[j]] >= 0:
            out[m] = unigram[words[j]]
            m += 1
    mask = pair_keys.shape[0] - 1
    for j in range(n - 1):
        a, b = words[j], words[j + 1]
        if a < 0 or b < 0:
            continue
        code = np.int64(a) * n_words + b
        slot = np.int64(_mix(code) & np.uint64(mask))
        while pair_keys[slot] >= 0:
            if pair_keys[slot] == code:
                out[m] = pair_terms[slot]
                m += 1
                break
            slot = (slot + 1) & mask
    return m


@njit(cache=True, nogil=True)
def _count(
    cps: np.ndarray, doc_ptr: np.ndarray, is_word: np.ndarray, table: np.ndarray, hashes: np.ndarray,
    chars: np.ndarray, ptr: np.ndarray, unigram: np.ndarray, pair_keys: np.ndarray,
    pair_terms: np.ndarray, n_words: int, slot: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """CSR term counts of every text: (indptr, sorted term ids, counts).

    ``slot`` is scratch with a place for every term id, all -1 (again on return): where a term of the
    current text is counted, so only its distinct terms are sorted, not every occurrence.
    """
    n_docs = doc_ptr.shape[0] - 1
    longest = 0
    for d in range(n_docs):
        longest = max(longest, doc_ptr[d + 1] - doc_ptr[d])
    words = np.empty(longest + 1, np.int32)
    terms = np.empty(2 * longest + 2, np.int32)
    packed = np.empty(2 * longest + 2, np.int64)  # a text's distinct terms: id << 32 | count
    indptr = np.zeros(n_docs + 1, np.int64)
    indices = np.empty(2 * cps.shape[0] + 1, np.int32)  # at most a unigram and a bigram a code point
    counts = np.empty(2 * cps.shape[0] + 1, np.float32)
    at = 0
    for d in range(n_docs):
        m = _terms(
            cps, doc_ptr[d], doc_ptr[d + 1], is_word, table, hashes, chars, ptr, unigram, pair_keys,
            pair_terms, n_words, words, terms,
        )  # fmt: skip
        n_distinct = 0
        for j in range(m):
            t = terms[j]
            if slot[t] < 0:
                slot[t] = n_distinct
                packed[n_distinct] = np.int64(t) << 32
                n_distinct += 1
            packed[slot[t]] += 1  # the count, in the low 32 bits
        row = packed[:n_distinct]
        row.sort()  # by term id
        for j in range(n_distinct):
            t = row[j] >> 32
            slot[t] = -1
            indices[at] = t
            counts[at] = row[j] & 0xFFFFFFFF
            at += 1
        indptr[d + 1] = at
    return indptr, indices[:at].copy(), counts[:at].copy()


@njit(cache=True, nogil=True)
def _term_ids(
    cps: np.ndarray, is_word: np.ndarray, table: np.ndarray, hashes: np.ndarray, chars: np.ndarray,
    ptr: np.ndarray, unigram: np.ndarray, pair_keys: np.ndarray, pair_terms: np.ndarray, n_words: int,
) -> np.ndarray:  # fmt: skip
    words = np.empty(cps.shape[0] + 1, np.int32)
    out = np.empty(2 * cps.shape[0] + 2, np.int32)
    m = _terms(
        cps, 0, cps.shape[0], is_word, table, hashes, chars, ptr, unigram, pair_keys, pair_terms,
        n_words, words, out,
    )  # fmt: skip
    return out[:m].copy()


def _bits(n: int) -> int:
    """Hash table size (log2) for ``n`` keys: load factor at most 1/2."""
    return max(4, int(2 * max(n, 1) - 1).bit_length())


class TermIndex:
    """Unigram and bigram terms of a vocabulary (``term -> id``), found in texts by compiled code.

    Terms of more than two words or with an empty word cannot come out of the tokenizer and are left
    out. Texts are cut to ``max_chars`` and lowercased (if ``lowercase``) here, as `tokens_of` does.
    """

    def __init__(self, index: dict[str, int], ngram_max: int, max_chars: int, lowercase: bool = True) -> None:
        if ngram_max > 2:
            raise ValueError("compiled term lookup covers unigrams and bigrams")
        self.max_chars = max_chars
        self.lowercase = lowercase
        self.n_terms = max(index.values(), default=-1) + 1
        self._local = threading.local()
        words: dict[str, int] = {}
        unigrams: list[tuple[int, int]] = []
        pairs: list[tuple[int, int, int]] = []
        for term, term_id in index.items():
            parts = term.split(" ")
            if len(parts) > max(ngram_max, 1) or not all(parts):
                continue
            ids = [words.setdefault(w, len(words)) for w in parts]
            if len(ids) == 1:
                unigrams.append((ids[0], term_id))
            else:
                pairs.append((ids[0], ids[1], term_id))
        self.n_words = len(words)
        self.unigram = np.full(self.n_words, -1, dtype=np.int32)
        for word_id, term_id in unigrams:
            self.unigram[word_id] = term_id
        codes = np.asarray([a * self.n_words + b for a, b, _ in pairs], dtype=np.int64)
        terms = np.asarray([t for _, _, t in pairs], dtype=np.int32)
        self.pair_keys, self.pair_terms = _build_pairs(codes, terms, _bits(len(codes)))
        self.chars, self.ptr = code_points(list(words))
        self.table, self.hashes = _build(self.chars, self.ptr, _bits(self.n_words))
        self.is_word = word_table()

    def _prepare(self, text: str) -> str:
        text = text[: self.max_chars]
        return text.lower() if self.lowercase else text

    def counts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per text, its terms' ids (ascending) and counts, as CSR arrays (indptr, ids, float32 counts)."""
        cps, doc_ptr = code_points([self._prepare(t) for t in texts])
        return _count(
            cps, doc_ptr, self.is_word, self.table, self.hashes, self.chars, self.ptr, self.unigram,
            self.pair_keys, self.pair_terms, self.n_words, self._slots(),
        )  # fmt: skip

    def _slots(self) -> np.ndarray:
        """This thread's scratch for `_count` (all -1 between calls; O(terms) to make, so kept)."""
        buf: np.ndarray | None = getattr(self._local, "slots", None)
        if buf is None:
            buf = self._local.slots = np.full(self.n_terms, -1, np.int64)
        return buf

    def term_ids(self, text: str) -> np.ndarray:
        """Every known term occurrence of ``text``: unigram ids in text order, then bigram ids."""
        cps, _ = code_points([self._prepare(text)])
        return _term_ids(
            cps, self.is_word, self.table, self.hashes, self.chars, self.ptr, self.unigram, self.pair_keys,
            self.pair_terms, self.n_words,
        )  # fmt: skip
