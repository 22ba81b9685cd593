"""LoRA training for the fine-tuning experiment: packed passage blocks, chat examples
(assistant reply only), batches and the training loop."""

from __future__ import annotations

import copy
import random
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engram.errors import EngramError

if TYPE_CHECKING:
    from engram.experiment.setup import ExperimentConfig

Log = Callable[[str], None]

Example = tuple[list[int], list[int]]  # input ids, labels (-100: not trained)


def passage_examples(texts: list[str], tokenizer: Any, block_tokens: int) -> list[Example]:
    """The texts, each ended by EOS, packed into blocks of ``block_tokens`` tokens."""
    stream: list[int] = []
    for text in texts:
        stream += tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    blocks = [stream[i : i + block_tokens] for i in range(0, len(stream), block_tokens)]
    return [(b, list(b)) for b in blocks if len(b) > 1]


def chat_examples(records: list[dict[str, Any]], tokenizer: Any) -> list[Example]:
    """Chat records tokenised with the chat template; only the assistant reply is trained."""
    out: list[Example] = []
    for record in records:
        messages = record["messages"]
        prompt = tokenizer.apply_chat_template(
            messages[:-1], add_generation_prompt=True, tokenize=False
        )
        full = tokenizer.apply_chat_template(messages, tokenize=False).rstrip("\n")
        if not full.startswith(prompt):
            raise EngramError("the chat template does not extend the prompt with the reply")
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        reply_ids = tokenizer.encode(full[len(prompt) :], add_special_tokens=False)
        out.append((prompt_ids + reply_ids, [-100] * len(prompt_ids) + reply_ids))
    return out


def _batches(examples: list[Example], size: int, seed: int) -> Iterator[list[Example]]:
    rng = random.Random(seed)
    while True:
        order = rng.sample(examples, len(examples))
        for start in range(0, len(order), size):
            yield order[start : start + size]


def _collate(batch: list[Example], pad_id: int, device: str) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = [x + [pad_id] * (width - len(x)) for x, _ in batch]
    labels = [y + [-100] * (width - len(y)) for _, y in batch]
    mask = [[1] * len(x) + [0] * (width - len(x)) for x, _ in batch]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "attention_mask": torch.tensor(mask, device=device),
    }


def train_lora(
    base_model: Any,
    tokenizer: Any,
    examples: list[Example],
    cfg: ExperimentConfig,
    device: str,
    *,
    save_to: Path | None = None,
    log: Log | None = None,
    label: str = "",
) -> tuple[Any, dict[str, Any]]:
    """LoRA-fine-tune a copy of ``base_model`` on ``examples`` for ``cfg.steps`` steps (AdamW,
    constant learning rate, gradients clipped at 1). The base model is left unchanged.

    Returns the copy with the adapter merged into its weights, and training statistics.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    if not examples:
        raise EngramError(f"no training examples for variant {label!r}")
    torch.manual_seed(cfg.seed)
    model = copy.deepcopy(base_model).to(device)
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha if cfg.alpha is not None else 2 * cfg.rank,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # deprecation notes between peft and transformers
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = _batches(examples, cfg.batch, cfg.seed)
    losses: list[float] = []
    tokens = 0
    model.train()
    started = time.perf_counter()
    for step in range(cfg.steps):
        inputs = _collate(next(batches), pad_id, device)
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], max_norm=1.0
        )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 4))
        tokens += int(inputs["attention_mask"].sum())
        if log:
            log(f"train {label} step {step + 1}/{cfg.steps} loss {losses[-1]:.3f}")
    seconds = time.perf_counter() - started
    model.eval()
    if save_to is not None:
        model.save_pretrained(str(save_to))
    merged = model.merge_and_unload()
    merged.eval()
    n_tokens = sum(len(x) for x, _ in examples)
    stats = {
        "examples": len(examples),
        "example_tokens": n_tokens,
        "steps": cfg.steps,
        "epochs": round(tokens / max(1, n_tokens), 2),
        "tokens_trained": tokens,
        "trainable_parameters": trainable,
        "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / cfg.steps, 2),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "losses": losses,
    }
    if save_to is not None:
        stats["adapter"] = str(save_to)
    return merged, stats
