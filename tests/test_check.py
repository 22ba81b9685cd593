"""`engram check [--repair]`, `engram init`, and read commands on a path that holds no store."""

from __future__ import annotations

import io

import pytest

from engram.cli import main
from engram.errors import StoreNotFoundError
from engram.memory import Memory


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "hello"],
        ["ask", "hello?"],
        ["stats"],
        ["namespaces"],
        ["delete", "x"],
        ["reindex"],
        ["check"],
        ["chat"],
        ["serve", "--port", "1"],
    ],
)
def test_read_commands_never_create_a_store(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # chat reads stdin
    path = tmp_path / "nosuch" / "dir" / "x.db"
    code, _, err = run(capsys, "--store", str(path), *argv)
    assert code == 1 and "no Engram store here" in err
    assert not (tmp_path / "nosuch").exists()


def test_python_api_create_flag(tmp_path, embedder):
    with pytest.raises(StoreNotFoundError):
        Memory(tmp_path / "missing.db", embedder=embedder, create=False)
    assert not (tmp_path / "missing.db").exists()
    Memory(tmp_path / "made.db", embedder=embedder).close()  # the default creates
    Memory(tmp_path / "made.db", embedder=embedder, create=False).close()


def test_init_then_check_and_repair(tmp_path, capsys, embedder):
    path = tmp_path / "s.db"
    assert run(capsys, "--store", str(path), "init")[1].startswith("created an empty store")
    assert "already holds a store" in run(capsys, "--store", str(path), "init")[1]
    with Memory(path, embedder=embedder) as mem:
        mem.add(["Herons hunt fish in shallow water.", "Owls hunt mice at night."])
    code, out, _ = run(capsys, "--store", str(path), "check")
    assert code == 0 and out.count(": ok") == 5 and "document index: ok (2 rows" in out, out

    vec = next((tmp_path / "s.db.index" / "vector" / "segments").glob("*.vec.npy"))
    data = bytearray(vec.read_bytes())
    data[-7] ^= 0x40  # a bit inside a vector, past the .npy header
    vec.write_bytes(bytes(data))
    code, out, err = run(capsys, "--store", str(path), "check")
    assert code == 1 and f"vector index: DAMAGED (segments/{vec.name} fails" in out
    assert "keyword index: ok" in out and "check --repair" in err
    code, out, _ = run(capsys, "--store", str(path), "check", "--repair")
    assert code == 0 and "vector index: repaired" in out
    code, out, _ = run(capsys, "--store", str(path), "check")
    assert code == 0 and "DAMAGED" not in out


def test_check_finds_an_index_that_disagrees_with_the_changelog(tmp_path, capsys, embedder):
    """Files whose checksums hold but whose rows do not match the store (a copied-over
    index of another store) are found too."""
    import shutil

    for name, texts in (("a.db", ["one thing", "two things"]), ("b.db", ["only one"])):
        with Memory(tmp_path / name, embedder=embedder) as mem:
            mem.add(texts)
    shutil.rmtree(tmp_path / "b.db.index")
    shutil.copytree(tmp_path / "a.db.index", tmp_path / "b.db.index")
    code, out, _ = run(capsys, "--store", str(tmp_path / "b.db"), "check")
    assert code == 1 and "holds 1 rows it should not" in out


def test_check_on_postgres(tmp_path, capsys, embedder):
    from pg import pg_url, store_location

    pg_url()
    with store_location("postgres", tmp_path, "check") as url:
        code, _, err = run(capsys, "--store", url, "check")
        assert code == 1 and "holds no Engram store" in err  # an empty schema: nothing created
        with Memory(url, embedder=embedder) as mem:
            mem.add(["Herons hunt fish.", "Owls hunt mice."])
            mem.delete(mem.search("owls", k=1, mode="keyword")[0].doc_id)
        code, out, _ = run(capsys, "--store", url, "check")
        assert code == 0 and "changelog: ok (1 chunks" in out, out
        assert "indexes: ok (kept inside the database)" in out
