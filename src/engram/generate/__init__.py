"""Text generators: a local model, llama.cpp, any OpenAI-compatible server, and a server."""

from engram.generate.base import BaseGenerator, Generator, StopFilter, apply_stop
from engram.generate.factory import GENERATORS, create_generator, register_generator
from engram.generate.llamacpp import LlamaCppGenerator
from engram.generate.local import LocalGenerator, default_cache_dir
from engram.generate.openai import OpenAIGenerator
from engram.generate.server import OpenAICompatibleServer, serve_openai_compatible

__all__ = [
    "GENERATORS",
    "BaseGenerator",
    "Generator",
    "LlamaCppGenerator",
    "LocalGenerator",
    "OpenAICompatibleServer",
    "OpenAIGenerator",
    "StopFilter",
    "apply_stop",
    "create_generator",
    "default_cache_dir",
    "register_generator",
    "serve_openai_compatible",
]
