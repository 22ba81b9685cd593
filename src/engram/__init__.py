"""Engram: an open memory store for foundation models."""

__version__ = "0.1.0"
