"""The converted-model cache: a folder built once per machine under a file lock, marked
complete by a fingerprint file, readable by every user; GGUF -> transformers conversion."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engram.errors import GenerationError

MARKER_FILE = "engram-model.json"
CACHE_FORMAT = 1
_CONVERT_LOCK = threading.Lock()  # one conversion at a time in this process


# --------------------------------------------------------------------------- atomic cache


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (``flock``) where the platform has one."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the atomic rename alone keeps it safe
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read_marker(target: Path) -> dict[str, Any] | None:
    try:
        return json.loads((target / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(target: Path, fingerprint: dict[str, Any]) -> bool:
    """True when ``target`` was fully written by :func:`build_cached` for ``fingerprint``."""
    return _read_marker(target) == fingerprint


def _make_readable(folder: Path) -> None:
    """mkdtemp creates 0700 folders; give the cache ordinary permissions (others may share it)."""
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o755)
        for path in folder.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)


def build_cached(target: Path, fingerprint: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Make ``target`` hold the output of ``build(folder)``, built at most once.

    ``build`` writes into a fresh temporary folder next to ``target``; a marker holding
    ``fingerprint`` is added and the folder is renamed into place atomically. Concurrent
    callers wait on a lock file and reuse the winner's result; a crash leaves only a temporary
    folder, which the next builder removes. A ``target`` whose marker differs is rebuilt.
    """
    target = Path(target)
    if is_complete(target, fingerprint):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_prefix, trash_prefix = f".{target.name}.tmp-", f".{target.name}.old-"
    with _CONVERT_LOCK, _file_lock(target.parent / f".{target.name}.lock"):
        if is_complete(target, fingerprint):
            return target
        # Holding the lock, any temporary folder left here belongs to a dead builder.
        for stale in target.parent.iterdir():
            if stale.name.startswith((tmp_prefix, trash_prefix)):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix, dir=target.parent))
        try:
            build(tmp)
            (tmp / MARKER_FILE).write_text(json.dumps(fingerprint, indent=1), encoding="utf-8")
            _make_readable(tmp)
            if target.exists():  # outdated or foreign: move aside, then replace
                old = Path(tempfile.mkdtemp(prefix=trash_prefix, dir=target.parent))
                os.replace(target, old / "content")
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.replace(tmp, target)
            except OSError:
                if not is_complete(target, fingerprint):  # lost a lock-free race? use the winner
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF causal LM into a Hugging Face folder (float32 safetensors).

    Uses transformers' GGUF reader directly: ``from_pretrained(gguf_file=...)`` would also
    require the ``accelerate`` package, and its result refuses ``save_pretrained``.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_gguf_checkpoint(str(gguf_path), return_tensors=True, model_to_load=model)
    missing, unexpected = model.load_state_dict(tensors["tensors"], strict=False)
    model.tie_weights()
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise GenerationError(
            f"{gguf_path} does not match its declared architecture "
            f"(missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def convert_gguf_cached(gguf_path: str | Path, target: str | Path) -> Path:
    """Convert ``gguf_path`` into the HF folder ``target`` once; return ``target``."""
    gguf_path = Path(gguf_path)
    try:
        size = gguf_path.stat().st_size
    except OSError as exc:
        raise GenerationError(f"cannot read the GGUF file {gguf_path}: {exc}") from exc
    fingerprint = {"format": CACHE_FORMAT, "source": gguf_path.name, "source_size": size}
    try:
        return build_cached(Path(target), fingerprint, lambda out: _convert_gguf(gguf_path, out))
    except GenerationError:
        raise
    except Exception as exc:
        raise GenerationError(
            f"could not convert {gguf_path} into a model folder at {target}: {exc}. "
            "Check free disk space and write access to the cache (ENGRAM_CACHE)."
        ) from exc
