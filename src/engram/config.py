"""One config object for a Memory; every default works offline on a laptop."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

READERS = ("auto", "extract", "generate")


@dataclass
class Config:
    # ingest
    chunk_tokens: int = 200  # capped at the embedder's input limit
    chunk_overlap: int = 32
    embed_batch: int = 64
    max_file_mb: float = 20.0
    # recall
    mode: str = "hybrid"  # hybrid | keyword | vector
    fusion: str = "blend"  # blend | rrf | learned
    alpha: float = 0.5  # blend weight of vectors: 0 keywords only, 1 vectors only
    rrf_k: int = 60
    candidates: int = 100  # per retriever, before fusion
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    language: str = "english"
    # keyword leg: BM25 of each chunk, or of its whole document (docs/benchmarks.md, #18);
    # auto: document where the backend can (local), chunk where it cannot (postgres, milvus)
    keyword_scope: str = "auto"  # auto | chunk | document
    title_weight: float = 0.1  # document scope: + weight * BM25 of the document's title
    # fusion "learned" (engram.recall.learned; fitted on SciFact train, docs/benchmarks.md #18):
    # keyword z-score + weight * chunk cosine + weight * whole-document cosine
    learned_cosine_weight: float = 10.0
    learned_document_weight: float = 10.0
    # recall stages beside fusion (engram.recall.refine; docs/benchmarks.md has the ablation)
    adaptive_gain: float = 0.0  # per-query alpha moves by gain * (vector - keyword confidence)
    doc_pool_decay: float = 0.0  # document = best chunk + decay * 2nd + decay^2 * 3rd ...
    doc_vector_weight: float = 0.0  # weight of whole-document (mean chunk) vectors
    feedback_docs: int = 10  # top candidates read as relevant by RM3 / Rocchio
    rm3_terms: int = 0  # RM3 expansion terms on the keyword leg (0: off)
    rm3_weight: float = 0.3  # weight of the expansion query's BM25 scores
    rocchio_weight: float = 0.0  # Rocchio: query vector + weight * mean of top vectors
    rerank_top: int = 0  # hits the local model rescores (0: off)
    rerank_weight: float = 0.5  # weight of its normalised score
    rerank_score: str = "likelihood"  # likelihood (of the query given the passage) | yesno
    # models
    embedder: str | None = None  # None: the store's recorded embedder, else "onnx"
    embedder_options: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    # answers
    generator: str = "local"  # local | llamacpp | openai
    generator_options: dict[str, Any] = field(default_factory=dict)
    reader: str = "auto"  # auto | extract | generate (auto: extract for small local models)
    extract_sentences: int = 2  # evidence sentences the extract reader reads
    extract_max_words: int = 4  # longest candidate answer span, in words
    extract_min_confidence: float = 0.25  # below this the extract reader abstains
    extract_sentence_answers: bool = True  # why/how questions: answer with the evidence sentence
    extract_similarity_weight: float = 1.0  # embedding cosine's weight in ranking evidence
    answer_k: int = 6  # hits recalled for an answer
    answer_budget: int = 1200  # prompt tokens, counted with the generator's tokenizer
    answer_max_tokens: int = 128
    answer_stop: list[str] | None = None  # None: a blank line for the small local model only
    min_similarity: float = 0.3  # below this cosine to the question a hit is not evidence...
    min_term_coverage: float = 0.5  # ...unless it holds this share of the question's terms
    require_grounding: bool = True  # replace answers the passages do not back by "no answer"
    cluster_threshold: float = 0.7  # cosine distance at which clusters are cut
    # vector index
    ann: str = "auto"  # auto/ivf: inverted lists from ann_threshold rows on; hnsw; exact: never
    ann_threshold: int = 50_000
    exact_filter_max: int = 20_000  # filters leaving fewer candidates are searched exactly
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    ivf_nprobe: int = 24  # inverted lists scanned per query (ann auto/ivf)
    ivf_nlist: int = 0  # 0: about sqrt(rows) lists
    # derived index housekeeping
    save_every_changes: int = 20_000
    compact_deleted_share: float = 0.25

    def replace(self, **changes: Any) -> Config:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown config option(s): {', '.join(sorted(unknown))}")
        return Config(**{**asdict(self), **changes})
