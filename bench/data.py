"""Synthetic benchmark data with fixed seeds: Zipf-vocabulary text plus clustered 384-d vectors.

One call writes a folder that every engine loads, so all engines index exactly the same rows::

    python bench/data.py --scale 100000 --out /tmp/engram-bench/data

What is generated (``describe()`` returns the same as a dict, and the report prints it):

* **Vocabulary.** ``vocab`` pronounceable words (consonant-vowel syllables, 2-4 of them), ranked;
  global word frequencies follow a Zipf-Mandelbrot law, p(r) ~ 1/(r + ``zipf_shift``)^``zipf_s``:
  text as it looks after stopword removal (the most common word is in ~1/3 of documents, the
  10th in ~1/4, the 100th in ~6%; SciFact after Engram's analyzer: 49%, 30%, 13% with documents
  twice as long).
* **Topics.** ``topics`` x ``subtopics`` clusters. Each topic owns ``topic_words`` words drawn from
  vocabulary ranks 200 and below, used with their own Zipf law.
* **Documents.** A length drawn from a log-normal (median ``len_median`` words); each word comes
  from the global Zipf law, or with probability ``topic_share`` from its topic's words. A document's
  topic follows a mild Zipf law over topics (popular topics are larger), its subtopic is uniform.
* **Vectors.** Unit vectors, ``dim`` dims: a shared direction (anisotropy, as in real sentence
  embeddings), plus the topic centroid, plus the subtopic centroid, plus a low-rank "meaning"
  component (``latent_rank`` dims shared by all documents), plus isotropic noise.
  The same-subtopic cosine is about 0.6, same topic 0.4, unrelated 0.05 (measured by
  ``describe``).
* **Metadata.** ``tenant``: one of 100 values, uniform, so ``tenant = t`` selects 1% of rows.
* **Queries.** From seeded random documents: 4 distinct words of the document (any frequency), and
  the document's vector plus isotropic noise (cosine about 0.75 to its source). Each query also
  has a random tenant for the filtered case. Exact top-10 (numpy, inner product) with and without
  the tenant filter are stored as ground truth for recall.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

TENANTS = 100


@dataclass
class Spec:
    scale: int
    seed: int = 20251127
    dim: int = 384
    vocab: int = 100_000
    zipf_s: float = 1.07
    zipf_shift: int = 20  # Zipf-Mandelbrot: text as it is after stopword removal
    topics: int = 100
    subtopics: int = 10
    topic_words: int = 1000
    topic_share: float = 0.25
    len_median: int = 70
    len_sigma: float = 0.35
    latent_rank: int = 48
    w_shared: float = 0.25
    w_topic: float = 0.6
    w_sub: float = 0.5
    w_latent: float = 0.55
    w_noise: float = 0.3
    queries: int = 300
    query_terms: int = 4
    query_noise: float = 0.88  # |noise| relative to the unit source vector: cosine ~0.75


def _words(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct pronounceable words of 2-4 consonant-vowel syllables (vectorised)."""
    cons = list("bdfgklmnprtvz") + ["ch", "sh", "th", "st", "tr", "gr"]
    vowels = ["a", "o", "u", "i", "ai", "ou"]
    syll = np.array([c + v for c in cons for v in vowels] + [""], dtype=object)
    out: dict[str, None] = {}
    while len(out) < n:
        m = 2 * (n - len(out)) + 1000
        k = rng.integers(2, 5, m)
        idx = rng.integers(0, len(syll) - 1, (m, 4))
        idx[np.arange(4) >= k[:, None]] = len(syll) - 1  # "" pads shorter words
        words = syll[idx[:, 0]] + syll[idx[:, 1]] + syll[idx[:, 2]] + syll[idx[:, 3]]
        for w in words.tolist():
            out.setdefault(w)
            if len(out) == n:
                break
    return np.array(list(out), dtype=object)


def _zipf_cdf(n: int, s: float, shift: float = 0.0) -> np.ndarray:
    p = 1.0 / (np.arange(1, n + 1) + shift) ** s
    return np.cumsum(p / p.sum())


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Generator:
    """Deterministic generator: block ``[start, stop)`` is seeded by ``(seed, start)``."""

    def __init__(self, spec: Spec):
        self.spec = s = spec
        rng = np.random.default_rng(s.seed)
        self.words = _words(s.vocab, rng)
        self.global_cdf = _zipf_cdf(s.vocab, s.zipf_s, s.zipf_shift)
        self.topic_vocab = rng.integers(200, s.vocab, size=(s.topics, s.topic_words))
        self.topic_cdf = _zipf_cdf(s.topic_words, 1.0)
        self.topic_pop = _zipf_cdf(s.topics, 0.5)
        self.shared = _unit(rng.standard_normal(s.dim))
        self.t_cent = _unit(rng.standard_normal((s.topics, s.dim)))
        self.s_cent = _unit(rng.standard_normal((s.topics * s.subtopics, s.dim)))
        self.latent = np.linalg.qr(rng.standard_normal((s.dim, s.latent_rank)))[0].T  # (r, dim)

    def block(self, start: int, stop: int) -> dict[str, np.ndarray | list[str]]:
        """Rows ``start..stop``: texts, vectors, topics, subtopics, tenants (seeded by block)."""
        s = self.spec
        rng = np.random.default_rng([s.seed, start])
        n = stop - start
        topic = np.searchsorted(self.topic_pop, rng.random(n))
        sub = topic * s.subtopics + rng.integers(0, s.subtopics, n)
        tenant = rng.integers(0, TENANTS, n).astype(np.int16)
        lengths = np.clip(
            np.round(s.len_median * np.exp(s.len_sigma * rng.standard_normal(n))), 8, 400
        ).astype(np.int64)
        total = int(lengths.sum())
        words = np.searchsorted(self.global_cdf, rng.random(total))
        from_topic = rng.random(total) < s.topic_share
        doc_of = np.repeat(np.arange(n), lengths)
        tw = np.searchsorted(self.topic_cdf, rng.random(int(from_topic.sum())))
        words[from_topic] = self.topic_vocab[topic[doc_of[from_topic]], tw]
        words = np.minimum(words, s.vocab - 1)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        wl = self.words[words].tolist()
        texts = [" ".join(wl[bounds[i] : bounds[i + 1]]) for i in range(n)]
        z = rng.standard_normal((n, s.latent_rank)).astype(np.float32) / np.sqrt(s.latent_rank)
        noise = rng.standard_normal((n, s.dim)).astype(np.float32) / np.sqrt(s.dim)
        vec = (
            s.w_shared * self.shared
            + s.w_topic * self.t_cent[topic]
            + s.w_sub * self.s_cent[sub]
            + s.w_latent * (z @ self.latent)
            + s.w_noise * noise
        )
        return {
            "texts": texts,
            "vectors": _unit(vec).astype(np.float32),
            "topic": topic,
            "sub": sub,
            "tenant": tenant,
        }


def exact_top(
    vectors: np.ndarray, queries: np.ndarray, k: int, allowed: list[np.ndarray] | None = None
) -> np.ndarray:
    """Exact inner-product top ``k`` row numbers per query (optionally within allowed rows)."""
    out = np.zeros((len(queries), k), dtype=np.int64)
    if allowed is None:
        best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(queries), k), dtype=np.int64)
        step = 100_000
        for start in range(0, len(vectors), step):
            sc = queries @ np.asarray(vectors[start : start + step]).T
            s_all = np.concatenate([best_s, sc], axis=1)
            i_all = np.concatenate(
                [best_i, np.broadcast_to(np.arange(start, start + sc.shape[1]), sc.shape)], axis=1
            )
            part = np.argpartition(-s_all, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(s_all, part, 1)
            best_i = np.take_along_axis(i_all, part, 1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        return np.take_along_axis(best_i, order, 1)
    for qi, (q, rows) in enumerate(zip(queries, allowed, strict=True)):
        sc = np.asarray(vectors[rows]) @ q
        top = np.argsort(-sc, kind="stable")[:k]
        out[qi, : len(top)] = rows[top]
        out[qi, len(top) :] = -1
    return out


def generate(scale: int, out: str | Path, queries: int = 300, force: bool = False) -> Path:
    """Write (or reuse) ``out/n<scale>/``; returns the folder."""
    spec = Spec(scale=scale, queries=queries)
    folder = Path(out) / f"n{scale}"
    done = folder / "spec.json"
    if done.exists() and not force and json.loads(done.read_text())["spec"] == asdict(spec):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    gen = Generator(spec)
    vectors = np.lib.format.open_memmap(
        folder / "vectors.npy", mode="w+", dtype=np.float32, shape=(scale, spec.dim)
    )
    tenants = np.zeros(scale, dtype=np.int16)
    subs = np.zeros(scale, dtype=np.int32)
    step = 50_000
    with open(folder / "texts.txt", "w", encoding="utf-8") as f:
        for start in range(0, scale, step):
            b = gen.block(start, min(scale, start + step))
            f.write("\n".join(b["texts"]) + "\n")
            vectors[start : start + len(b["texts"])] = b["vectors"]
            tenants[start : start + len(b["texts"])] = b["tenant"]
            subs[start : start + len(b["texts"])] = b["sub"]
    vectors.flush()
    np.save(folder / "tenants.npy", tenants)
    np.save(folder / "subtopics.npy", subs)
    # Queries
    rng = np.random.default_rng([spec.seed, 7, scale])
    src = rng.choice(scale, size=queries, replace=False)
    texts = read_texts(folder, rows=set(src.tolist()))
    q_text = []
    for r in src:
        terms = list(dict.fromkeys(texts[int(r)].split()))
        pick = rng.choice(len(terms), size=min(spec.query_terms, len(terms)), replace=False)
        q_text.append(" ".join(terms[i] for i in sorted(pick)))
    noise = _unit(rng.standard_normal((queries, spec.dim))) * spec.query_noise
    qvecs = _unit(np.asarray(vectors[src]) + noise).astype(np.float32)
    q_tenant = rng.integers(0, TENANTS, queries).astype(np.int16)
    by_tenant = {t: np.flatnonzero(tenants == t) for t in np.unique(q_tenant)}
    truth = exact_top(vectors, qvecs, 10)
    truth_f = exact_top(vectors, qvecs, 10, [by_tenant[t] for t in q_tenant])
    np.save(folder / "qvecs.npy", qvecs)
    np.save(folder / "truth.npy", truth)
    np.save(folder / "truth_filtered.npy", truth_f)
    (folder / "queries.json").write_text(
        json.dumps(
            {
                "text": q_text,
                "source": src.tolist(),
                "tenant": [int(t) for t in q_tenant],
            }
        )
    )
    done.write_text(
        json.dumps({"spec": asdict(spec), "seconds": round(time.perf_counter() - t0, 1)})
    )
    return folder


def read_texts(folder: str | Path, rows: set[int] | None = None) -> dict[int, str] | list[str]:
    """All texts (a list), or only ``rows`` (a dict)."""
    with open(Path(folder) / "texts.txt", encoding="utf-8") as f:
        if rows is None:
            return f.read().split("\n")[:-1]
        return {i: line.rstrip("\n") for i, line in enumerate(f) if i in rows}


def iter_texts(folder: str | Path, batch: int = 50_000):
    """``(start, [texts])`` blocks, without holding every text in memory."""
    buf: list[str] = []
    start = 0
    with open(Path(folder) / "texts.txt", encoding="utf-8") as f:
        for line in f:
            buf.append(line.rstrip("\n"))
            if len(buf) == batch:
                yield start, buf
                start += len(buf)
                buf = []
    if buf:
        yield start, buf


def load(folder: str | Path) -> dict:
    folder = Path(folder)
    q = json.loads((folder / "queries.json").read_text())
    return {
        "folder": folder,
        "spec": json.loads((folder / "spec.json").read_text())["spec"],
        "vectors": np.load(folder / "vectors.npy", mmap_mode="r"),
        "tenants": np.load(folder / "tenants.npy"),
        "q_text": q["text"],
        "q_source": q["source"],
        "q_tenant": q["tenant"],
        "qvecs": np.load(folder / "qvecs.npy"),
        "truth": np.load(folder / "truth.npy"),
        "truth_filtered": np.load(folder / "truth_filtered.npy"),
    }


def describe(folder: str | Path, sample: int = 2000) -> dict:
    """Measured statistics of a generated folder: cosines, words, tokens, vocabulary used."""
    folder = Path(folder)
    vec = np.load(folder / "vectors.npy", mmap_mode="r")
    subs = np.load(folder / "subtopics.npy")
    spec = Spec(**json.loads((folder / "spec.json").read_text())["spec"])
    rng = np.random.default_rng(1)
    n = len(vec)
    a, b = rng.integers(0, n, sample), rng.integers(0, n, sample)
    va, vb = np.asarray(vec[np.sort(a)]), np.asarray(vec[np.sort(b)])
    sa, sb = subs[np.sort(a)], subs[np.sort(b)]
    cos = np.sum(va * vb, axis=1)
    same_sub = []
    for i in rng.integers(0, n, 300):
        rows = np.flatnonzero(subs == subs[i])
        j = rows[rng.integers(0, len(rows))]
        if j != i:
            same_sub.append(float(vec[i] @ vec[j]))
    lens, vocab = [], set()
    for _, block in iter_texts(folder, 20_000):
        for t in block[:2000]:
            w = t.split()
            lens.append(len(w))
            vocab.update(w)
        break
    q = json.loads((folder / "queries.json").read_text())
    qv = np.load(folder / "qvecs.npy")
    return {
        "rows": n,
        "dim": spec.dim,
        "clusters": spec.topics * spec.subtopics,
        "cos_random_mean": round(float(cos[sa != sb].mean()), 3),
        "cos_same_subtopic_mean": round(float(np.mean(same_sub)), 3),
        "cos_query_source_mean": round(
            float(np.mean(np.sum(qv * np.asarray(vec[np.array(q["source"])]), axis=1))), 3
        ),
        "words_per_doc_mean": round(float(np.mean(lens)), 1),
        "distinct_words_first_2000_docs": len(vocab),
        "query_example": q["text"][0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--out", default="/tmp/engram-bench/data")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--force", action="store_true")
    a = p.parse_args()
    folder = generate(a.scale, a.out, a.queries, a.force)
    print(json.dumps({"folder": str(folder), **describe(folder)}, indent=1))


if __name__ == "__main__":
    main()
