"""The command line as a new user meets it: --version, help texts, list/show, the embedder a
store remembers, ENGRAM_* variables, install hints for missing extras, quiet output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engram.cli import build_parser, main
from engram.cli_help import iter_parsers

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def engram(*argv: str, env: dict[str, str] | None = None, stdin: str = "") -> tuple:
    """The CLI in a fresh process, output through pipes (as in `engram search ... | less`)."""
    full = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    for key in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        full.pop(key, None)  # the CLI must quieten libraries by itself
    p = subprocess.run(
        [sys.executable, "-m", "engram.cli", *argv],
        capture_output=True,
        text=True,
        env=full,
        input=stdin,
        timeout=300,
    )
    return p.returncode, p.stdout, p.stderr


def test_version(capsys):
    from engram import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip().startswith(f"engram {__version__}")


def test_every_option_has_help_with_its_default_and_no_rst():
    parser = build_parser()
    missing, no_default = [], []
    for p in iter_parsers(parser):
        text = p.format_help()
        assert "``" not in text and ":func:" not in text, p.prog
        for action in p._actions:
            if action.dest in ("help", "version") or action.nargs == "A...":
                continue  # argparse's own, and the sub-command choice
            if not action.help:
                missing.append(f"{p.prog} {action.option_strings or action.dest}")
                continue
            flag = action.nargs == 0  # store_true / store_const: on or off
            if action.option_strings and not flag and not action.required:
                shown = p._get_formatter()._expand_help(action)
                if "default" not in shown:
                    no_default.append(f"{p.prog} {action.option_strings}")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help names no default: {no_default}"


def test_list_and_show(tmp_path, capsys, monkeypatch):
    store = tmp_path / "notes.db"
    monkeypatch.setenv("ENGRAM_STORE", str(store))
    (tmp_path / "herons.md").write_text("# Herons\nHerons hunt fish in shallow water.\n")
    (tmp_path / "owls.md").write_text("# Owls\nOwls hunt mice at night.\n")
    assert run(capsys, "add", str(tmp_path / "herons.md"), str(tmp_path / "owls.md"))[0] == 0
    assert run(capsys, "add", str(tmp_path / "owls.md"), "--namespace", "night")[0] == 0

    code, out, _ = run(capsys, "list", "--json")
    docs = json.loads(out)
    assert code == 0 and sorted(d["title"] for d in docs) == ["Herons", "Owls"]
    assert all(d["namespace"] == "default" and d["chunks"] == 1 for d in docs)
    code, out, _ = run(capsys, "list", "--namespace", "*", "--json")
    assert len(json.loads(out)) == 3
    code, out, _ = run(capsys, "list", "--where", "title=Owls")
    assert code == 0 and "Owls" in out and "Herons" not in out

    heron = next(d for d in docs if d["title"] == "Herons")
    code, out, _ = run(capsys, "show", heron["id"])
    assert code == 0 and f"id: {heron['id']}" in out and "Herons hunt fish" in out
    code, out, _ = run(capsys, "show", heron["id"], "--json")
    shown = json.loads(out)
    assert (
        shown["chunks"][0]["text"].startswith("# Herons") or "Herons" in shown["chunks"][0]["text"]
    )

    code, _, err = run(capsys, "show", "no-such-doc")
    assert code == 1 and "no document 'no-such-doc'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "list", "--namespace", "nowhere")
    assert code == 1 and "no namespace 'nowhere'" in err


def test_the_store_remembers_its_embedder(tmp_path, capsys, monkeypatch):
    """Made with --embedder onnx: later commands use it without the flag; a different
    explicit choice (flag or ENGRAM_EMBEDDER) is a clear one-line error."""
    monkeypatch.delenv("ENGRAM_EMBEDDER", raising=False)
    store = str(tmp_path / "onnx.db")
    (tmp_path / "kettle.md").write_text("# Kettle\nDescale the kettle with vinegar monthly.\n")
    code, _, err = run(capsys, "--store", store, "--embedder", "onnx", "add", str(tmp_path))
    assert code == 0, err
    code, out, err = run(capsys, "--store", store, "search", "descaling a kettle", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["title"] == "Kettle"
    code, out, _ = run(capsys, "--store", store, "stats", "--json")
    stats = json.loads(out)
    assert stats["embedder"] == "onnx" and stats["embedding_model"].endswith("@onnx-int8")

    code, _, err = run(capsys, "--store", store, "--embedder", "local", "search", "kettle")
    assert code == 1 and "made with the 'onnx' embedder" in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("ENGRAM_EMBEDDER", "local")
    code, _, err = run(capsys, "--store", store, "search", "kettle")
    assert code == 1 and "made with the 'onnx' embedder" in err
    monkeypatch.setenv("ENGRAM_EMBEDDER", "onnx")
    assert run(capsys, "--store", store, "search", "kettle")[0] == 0
    monkeypatch.setenv("ENGRAM_EMBEDDER", "bogus")
    code, _, err = run(capsys, "--store", store, "search", "kettle")
    assert code == 1 and "ENGRAM_EMBEDDER='bogus' is not one of local, onnx, openai" in err


def test_stores_made_before_the_setting_are_recognised(sample_store, capsys):
    """The fixture store was made with the torch model and an Embedder object: its model id
    names the embedder, so the CLI picks `local` without being told."""
    code, out, err = run(capsys, "--store", str(sample_store), "stats", "--json")
    assert code == 0 and json.loads(out)["embedder"] == "local", err


def test_engram_generator_variable(sample_store, capsys, monkeypatch):
    """ENGRAM_GENERATOR picks the generator for ask: openai without a server configured fails
    with the openai generator's own message, proving the variable was read."""
    monkeypatch.setenv("ENGRAM_GENERATOR", "openai")
    for key in ("ENGRAM_LLM_BASE_URL", "ENGRAM_LLM_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    code, _, err = run(capsys, "--store", str(sample_store), "ask", "How do I descale a kettle?")
    assert code == 1 and "ENGRAM_LLM" in err
    monkeypatch.setenv("ENGRAM_GENERATOR", "gpt-9")
    code, _, err = run(capsys, "--store", str(sample_store), "ask", "kettle?")
    assert code == 1 and "ENGRAM_GENERATOR='gpt-9' is not one of" in err


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {mods!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
from engram.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "argv, mods, extra",
    [
        (["serve"], ["uvicorn", "fastapi", "mcp"], "server"),
        (["mcp"], ["uvicorn", "fastapi", "mcp"], "server"),
        (["--embedder", "local", "add", "{file}"], ["torch", "sentence_transformers"], "models"),
    ],
)
def test_a_missing_extra_prints_an_install_hint(tmp_path, argv, mods, extra):
    """Without the extra's modules importable, one line names the extra; no traceback."""
    code = BLOCK.format(mods=mods)
    (tmp_path / "note.md").write_text("Herons hunt fish.\n")
    argv = [a.replace("{file}", str(tmp_path / "note.md")) for a in argv]
    env = {**os.environ, "PYTHONPATH": SRC, "ENGRAM_STORE": str(tmp_path / "x.db")}
    p = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120
    )
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert f"pip install 'engram-store[{extra}]'" in lines[0]


@pytest.mark.slow
def test_no_progress_bars_in_piped_output(sample_store):
    """The torch model loads through transformers, which draws "Loading weights" bars."""
    code, out, err = engram("--store", str(sample_store), "search", "kettle", "--k", "2")
    assert code == 0, err
    assert "Loading weights" not in out + err and "it/s" not in out + err
    assert "%|" not in out + err
