"""``engram serve``, ``engram keys create|list|revoke`` and ``engram mcp``.

``add_server_parsers(subparsers)`` registers them on the main ``engram`` parser; each handler
takes the parsed arguments (with the global ``--store`` and ``--threads``) and returns an exit
status, raising ``EngramError`` for the user's mistakes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from typing import Any

from engram.cli_help import memory_options
from engram.errors import EngramError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def store_path(args: argparse.Namespace) -> str:
    return getattr(args, "store", None) or os.environ.get("ENGRAM_STORE") or "engram.db"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, active_keys: int) -> None:
    """Refuse to serve beyond loopback while no API key exists."""
    if active_keys == 0 and not is_loopback(host):
        raise EngramError(
            f"refusing to listen on {host}: no API keys are configured, so anyone who can "
            "reach this address could read and change the store. Create a key first "
            "(engram keys create --namespace NS --scope read|write|admin), or listen on "
            "127.0.0.1."
        )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from engram.memory import Memory
    from engram.server.app import create_app
    from engram.server.keys import KeyStore
    from engram.store import open_store

    path = store_path(args)
    open_store(path, create=False).close()  # serving never creates a store: `engram init` does
    keys = KeyStore(path)
    try:
        active = keys.count()
        check_bind(args.host, active)
        if active == 0:
            print(
                f"engram: warning: no API keys exist: serving without authentication on "
                f"{args.host} only; create a key to require one",
                file=sys.stderr,
            )
        memory = Memory(path, **memory_options(args))
        try:
            app = create_app(
                memory,
                keys=keys,
                max_body_bytes=int(args.max_body_mb * 2**20),
                open_when_no_keys=is_loopback(args.host),
            )
            uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
        finally:
            memory.close()
    finally:
        keys.close()
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from engram.server.keys import KeyStore

    with KeyStore(store_path(args)) as keys:
        key_id, plaintext = keys.create(args.namespace, args.scope, name=args.name or "")
    print(
        f"created key {key_id}: scope {args.scope}, namespaces {', '.join(args.namespace)}\n"
        "the key is shown only this once; store it now:",
        flush=True,
    )
    print(plaintext, flush=True)
    return 0


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def cmd_keys_list(args: argparse.Namespace) -> int:
    from engram.server.keys import KeyStore

    with KeyStore(store_path(args)) as keys:
        rows = keys.list(include_revoked=args.all)
    if args.json:
        json.dump([k.to_dict() for k in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print("no keys")
        return 0
    print(f"{'id':12}  {'scope':5}  {'created':16}  {'last used':16}  {'status':7}  namespaces")
    for k in rows:
        status = "active" if k.active else "revoked"
        print(
            f"{k.id:12}  {k.scope:5}  {_when(k.created_at):16}  {_when(k.last_used_at):16}  "
            f"{status:7}  {', '.join(k.namespaces)}{'  (' + k.name + ')' if k.name else ''}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from engram.server.keys import KeyStore

    with KeyStore(store_path(args)) as keys:
        if not keys.revoke(args.id):
            raise EngramError(f"no active key {args.id!r} (see engram keys list)")
    print(f"revoked key {args.id}")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from engram.server.mcp import run_stdio

    run_stdio(store_path(args), namespace=args.namespace, **memory_options(args))
    return 0


_GENERATOR_HELP = (
    "model for answers (default local SmolLM2-135M-Instruct; openai reads "
    "ENGRAM_LLM_BASE_URL, ENGRAM_LLM_MODEL, ENGRAM_LLM_API_KEY)"
)


def add_server_parsers(subparsers: Any) -> None:
    """Register ``serve``, ``keys`` and ``mcp`` on the ``engram`` command's subparsers."""
    s = subparsers.add_parser("serve", help="serve the HTTP API (see docs/server.md)")
    s.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    s.add_argument(
        "--max-body-mb", type=float, default=4.0, help="refuse larger request bodies (413)"
    )
    s.add_argument("--generator", choices=["local", "llamacpp", "openai"], help=_GENERATOR_HELP)
    s.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level",
    )
    s.set_defaults(func=cmd_serve)

    k = subparsers.add_parser("keys", help="create, list and revoke API keys for the server")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    kc = ksub.add_parser("create", help="create a key; prints it once, alone on the last line")
    kc.add_argument(
        "--namespace",
        action="append",
        required=True,
        metavar="NS",
        help="a namespace the key reaches (repeatable; '*' for all, 'prefix*' for a prefix)",
    )
    kc.add_argument(
        "--scope",
        choices=["read", "write", "admin"],
        required=True,
        help="what the key may do: read < write < admin (docs/server.md)",
    )
    kc.add_argument("--name", help="a note to tell keys apart (default: none)")
    kc.set_defaults(func=cmd_keys_create)
    kl = ksub.add_parser("list", help="list keys (never their secrets)")
    kl.add_argument("--all", action="store_true", help="include revoked keys")
    kl.add_argument("--json", action="store_true", help="print JSON")
    kl.set_defaults(func=cmd_keys_list)
    kr = ksub.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("id", metavar="ID", help="the key's id (engram keys list shows it)")
    kr.set_defaults(func=cmd_keys_revoke)

    m = subparsers.add_parser("mcp", help="serve memory tools over MCP (stdio)")
    m.add_argument("--namespace", default="default", help="namespace when a tool call names none")
    m.add_argument("--generator", choices=["local", "llamacpp", "openai"], help=_GENERATOR_HELP)
    m.set_defaults(func=cmd_mcp)
