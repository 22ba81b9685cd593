"""Engram over the network: the HTTP API (``app``), API keys (``keys``), MCP (``mcp``) and
the ``engram serve|keys|mcp`` commands (``cli``). Imports stay lazy: FastAPI, uvicorn and the
MCP SDK load only when a server starts."""
