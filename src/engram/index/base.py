"""Derived indexes: immutable segments on disk, a manifest, and catch-up from the changelog.

Layout of one index folder::

    segments/<name>.*     immutable segment files, written once
    manifest-<n>.json     which segments, the tombstones file, and the last change applied
    CURRENT               the name of the live manifest, replaced atomically

A save writes new segment files and a new manifest, then swaps ``CURRENT`` with
``os.replace``: a crash at any moment leaves the previous manifest intact. Losing the whole
folder loses nothing: the index is rebuilt from the store.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engram.errors import EngramError

log = logging.getLogger(__name__)


def positions_of(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Ascending positions in sorted ``ids`` of the ids also in sorted ``wanted``
    (binary search per wanted id: O(len(wanted) log len(ids)), no full-length mask)."""
    if not len(ids) or not len(wanted):
        return np.zeros(0, dtype=np.int64)
    pos = np.searchsorted(ids, wanted)
    ok = pos < len(ids)
    pos, w = pos[ok], wanted[ok]
    return pos[ids[pos] == w]


def mask_of(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Boolean mask over sorted ``ids``: True where the id is in sorted ``wanted``."""
    mask = np.zeros(len(ids), dtype=bool)
    mask[positions_of(ids, wanted)] = True
    return mask


def ascending_order(ids: np.ndarray) -> np.ndarray | None:
    """The order that sorts ``ids``, or None when they are already ascending."""
    if len(ids) < 2 or bool(np.all(ids[1:] >= ids[:-1])):
        return None
    return np.argsort(ids, kind="stable")


def stack_rows(blocks: list[Any], order: np.ndarray | None) -> np.ndarray:
    """The rows of ``blocks`` (matrices of one width) as one float32 matrix, in ``order`` when
    given, each row copied once, straight to its place. The list is emptied as its blocks are
    copied, so a block no one else holds is freed before the next is read: a bulk load's
    vectors are in memory about once, not thrice (blocks, stacked, reordered)."""
    n = sum(len(b) for b in blocks)
    out = np.empty((n, blocks[0].shape[1]), dtype=np.float32)
    place = None
    if order is not None:
        place = np.empty(n, dtype=np.int64)
        place[order] = np.arange(n)
    start = 0
    blocks.reverse()  # pop from the end
    while blocks:
        block = blocks.pop()
        end = start + len(block)
        out[slice(start, end) if place is None else place[start:end]] = block
        start = end
    return out


FORMAT = 2  # 2: every file carries a checksum in the manifest


class IndexDamage(Exception):
    """An index file whose bytes differ from what its manifest recorded."""


def file_checksum(path: Path) -> str:
    """``crc32:<hex>:<size>`` of a file, read in large blocks (several GB/s)."""
    crc, size = 0, 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        while n := f.readinto(buf):
            crc = zlib.crc32(view[:n], crc)
            size += n
    return f"crc32:{crc:08x}:{size}"


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """The checksum of a manifest's own content (every key but ``checksum``)."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return f"crc32:{zlib.crc32(json.dumps(body, sort_keys=True).encode()):08x}"


STAMPS = "VERIFIED.json"  # per file: size, mtime, ctime, inode and checksum when last verified


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class SegmentedIndex:
    """Base of the keyword and vector indexes. Subclasses hold segments of chunk ids."""

    kind = "base"
    # manifest ``file_*`` keys whose files are rebuilt from the segments when damaged
    rebuildable_files: tuple[str, ...] = ()

    def __init__(self, directory: str | Path | None):
        self.directory = Path(directory) if directory else None
        self.last_seq = 0
        self.deleted: set[int] = set()
        self._deleted_ids: np.ndarray | None = None  # sorted ``deleted``, until it changes
        self.segments: list[Any] = []
        self.segment_names: list[str | None] = []  # None: not saved yet
        self.dirty = False
        self.checksums: dict[str, str] = {}  # file name -> checksum, of files saved or verified
        self.damaged: list[str] = []  # what the last load found damaged

    @property
    def folder(self) -> Path:
        """The index's folder (an index kept in memory only has none)."""
        if self.directory is None:
            raise EngramError(f"this {self.kind} index is kept in memory: it has no folder")
        return self.directory

    # -- subclass hooks -------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Settings that must match for saved files to be reused."""
        return {}

    def add(self, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
        raise NotImplementedError

    def freeze(self) -> None:
        """Turn in-memory additions into an immutable segment."""

    def _save_segment(self, segment: Any, stem: Path) -> None:
        raise NotImplementedError

    def _load_segment(self, stem: Path) -> Any:
        raise NotImplementedError

    def _save_extra(self, version_dir: Path, name: str) -> dict[str, Any]:
        return {}

    def _load_extra(self, version_dir: Path, manifest: dict[str, Any]) -> None:
        pass

    def size(self) -> int:
        """Rows held, deleted ones included."""
        raise NotImplementedError

    def reset(self) -> None:
        self.last_seq = 0
        self.deleted = set()
        self._deleted_ids = None
        self.segments = []
        self.segment_names = []
        self.checksums = {}
        self.dirty = True

    # -- deletes --------------------------------------------------------------------------
    def remove(self, ids: Sequence[int]) -> None:
        if ids:
            self.deleted.update(int(i) for i in ids)
            self._deleted_ids = None
            self._on_remove(np.array(sorted(set(ids)), dtype=np.int64))
            self.dirty = True

    def _on_remove(self, ids: np.ndarray) -> None:
        """Update per-segment alive masks."""

    def deleted_ids(self) -> np.ndarray:
        """The deleted row ids as a sorted int64 array (kept until the next delete)."""
        if self._deleted_ids is None:
            self._deleted_ids = np.array(sorted(self.deleted), dtype=np.int64)
        return self._deleted_ids

    def deleted_share(self) -> float:
        n = self.size()
        return len(self.deleted) / n if n else 0.0

    # -- persistence ----------------------------------------------------------------------
    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        """An advisory lock on the folder, so processes never read or sweep half a save."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "LOCK", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def save(self) -> None:
        """Persist atomically (new segment files + manifest, then swap CURRENT)."""
        if self.directory is None or not self.dirty:
            return
        self.freeze()
        with self._locked(exclusive=True):
            self._save()

    def _save(self) -> None:
        seg_dir = self.folder / "segments"
        seg_dir.mkdir(parents=True, exist_ok=True)
        for i, seg in enumerate(self.segments):
            name = self.segment_names[i]
            # New segments, and ones another process's save swept away, are written anew.
            if name is None or not any(seg_dir.glob(name + ".*")):
                name = f"{self.kind}-{uuid.uuid4().hex[:12]}"
                self._save_segment(seg, seg_dir / name)
                self.segment_names[i] = name
        tag = uuid.uuid4().hex[:8]
        tomb = f"deleted-{tag}.npy"
        np.save(seg_dir / tomb, self.deleted_ids())
        manifest = {
            "kind": self.kind,
            "format": FORMAT,
            "params": self.params(),
            "last_seq": self.last_seq,
            "segments": self.segment_names,
            "deleted": tomb,
            **self._save_extra(seg_dir, tag),
        }
        manifest["checksums"] = self._checksums_for(manifest)
        self._stamp_saved(manifest["checksums"])
        manifest["checksum"] = manifest_checksum(manifest)
        name = f"manifest-{tag}.json"
        _fsync_write(self.folder / name, json.dumps(manifest).encode())
        _fsync_write(self.folder / "CURRENT.tmp", name.encode())
        os.replace(self.folder / "CURRENT.tmp", self.folder / "CURRENT")
        self.dirty = False
        self._collect_garbage(manifest, name)

    @staticmethod
    def _kept_stems(manifest: dict[str, Any]) -> set[str]:
        keep = set(manifest["segments"]) | {Path(manifest["deleted"]).stem}
        # a file's stem is its name up to the first dot ("graph-ab12.ids.npy" -> "graph-ab12")
        return keep | {v.split(".")[0] for k, v in manifest.items() if k.startswith("file_")}

    def _checksums_for(self, manifest: dict[str, Any]) -> dict[str, str]:
        """Checksums of every file the manifest names. Segment files are immutable once
        written, so their checksums computed before are reused; the extra files (``file_*``
        keys, such as a graph) are hashed anew, since a save may rewrite one under its name."""
        keep = self._kept_stems(manifest)
        extra = {v.split(".")[0] for k, v in manifest.items() if k.startswith("file_")}
        out = {}
        for path in sorted((self.folder / "segments").iterdir()):
            stem = path.name.split(".")[0]
            if stem in keep:
                known = None if stem in extra else self.checksums.get(path.name)
                out[path.name] = known or file_checksum(path)
        self.checksums = out
        return out

    def _collect_garbage(self, manifest: dict[str, Any], current: str) -> None:
        keep = self._kept_stems(manifest)
        for path in (self.folder / "segments").iterdir():
            if path.name.split(".")[0] not in keep:
                path.unlink(missing_ok=True)
        for path in self.folder.glob("manifest-*.json"):
            if path.name != current:
                path.unlink(missing_ok=True)

    def load(self) -> bool:
        """Load the saved state; False (and an empty index) when missing, stale or damaged.
        Every file is checked against its manifest checksum first."""
        self.reset()
        self.dirty = False
        self.damaged = []
        if self.directory is None or not (self.folder / "CURRENT").exists():
            return False
        with self._locked(exclusive=False):
            return self._load()

    def _read_manifest(self) -> dict[str, Any]:
        name = (self.folder / "CURRENT").read_text().strip()
        manifest = json.loads((self.folder / name).read_text())
        if not isinstance(manifest, dict) or manifest.get("checksum") != manifest_checksum(
            manifest
        ):
            raise IndexDamage(f"{name} fails its checksum")
        return manifest

    def _bad_files(self, manifest: dict[str, Any], full: bool = False) -> list[str]:
        """Names of the files whose checksum differs from the manifest's (or are missing).

        A file whose size, mtime, ctime and inode are those recorded when it last verified
        (``VERIFIED.json``) is not read again, unless ``full``: any write to a file changes its
        ctime, so reopening a large store re-hashes only the files written since."""
        seg_dir = self.folder / "segments"
        stamps = {} if full else self._read_stamps()
        verified: dict[str, list] = {}
        bad = []
        for fname, expected in manifest["checksums"].items():
            try:
                stamp = [*_stat_key(seg_dir / fname), expected]
                if stamps.get(fname) != stamp and file_checksum(seg_dir / fname) != expected:
                    bad.append(fname)
                    continue
            except OSError:
                bad.append(fname)
                continue
            verified[fname] = stamp
        if verified != stamps:
            self._write_stamps(verified)
        stems = {f.split(".")[0] for f in manifest["checksums"]}
        bad += sorted(s for s in self._kept_stems(manifest) if s not in stems)
        return bad

    def _stamp_saved(self, checksums: dict[str, str]) -> None:
        """Record the files just hashed, so that the next open does not read them again."""
        seg_dir = self.folder / "segments"
        stamps = {}
        for fname, expected in checksums.items():
            try:
                stamps[fname] = [*_stat_key(seg_dir / fname), expected]
            except OSError:
                continue
        self._write_stamps(stamps)

    def _read_stamps(self) -> dict[str, list]:
        try:
            stamps = json.loads((self.folder / STAMPS).read_text())
            return stamps if isinstance(stamps, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_stamps(self, stamps: dict[str, list]) -> None:
        """Best effort (a read-only folder just means hashing again next time)."""
        tmp = self.folder / f"{STAMPS}.{uuid.uuid4().hex[:8]}"
        try:
            tmp.write_text(json.dumps(stamps))
            os.replace(tmp, self.folder / STAMPS)
        except OSError:
            tmp.unlink(missing_ok=True)

    def verify(self) -> list[str]:
        """Problems found in the saved files (empty when every checksum holds)."""
        if self.directory is None or not (self.folder / "CURRENT").exists():
            return []
        with self._locked(exclusive=False):
            try:
                manifest = self._read_manifest()
                if manifest.get("format") != FORMAT:
                    return [f"format {manifest.get('format')} has no checksums"]
                bad = self._bad_files(manifest, full=True)
                return [f"segments/{f} fails its checksum" for f in bad]
            except Exception as exc:
                return [f"manifest unreadable ({exc})"]

    def _load(self) -> bool:
        try:
            manifest = self._read_manifest()
            if manifest.get("kind") != self.kind or manifest.get("params") != self.params():
                log.info("%s index settings changed; rebuilding", self.kind)
                return False
            if manifest.get("format") != FORMAT:
                log.info("%s index has no checksums (older format); rebuilding", self.kind)
                return False
            bad = self._bad_files(manifest)
            derived = {manifest[k]: k for k in self.rebuildable_files if k in manifest}
            if bad and all(b in derived for b in bad):
                log.warning(
                    "%s index: %s fails its checksum; rebuilding it from the segments",
                    self.kind,
                    ", ".join(bad),
                )
                manifest = {k: v for k, v in manifest.items() if k not in derived.values()}
                self.damaged = bad
            elif bad:
                self.damaged = bad
                raise IndexDamage(f"{', '.join(bad)} fails its checksum")
            seg_dir = self.folder / "segments"
            self.segments = [self._load_segment(seg_dir / s) for s in manifest["segments"]]
            self.segment_names = list(manifest["segments"])
            deleted = np.load(seg_dir / manifest["deleted"])
            self.deleted = set(deleted.tolist())
            self._deleted_ids = None
            self._on_remove(deleted)
            self._load_extra(seg_dir, manifest)
            self.last_seq = int(manifest["last_seq"])
            self.checksums = {f: c for f, c in manifest["checksums"].items() if f not in bad}
            self.dirty = bool(bad)
            return True
        except Exception as exc:  # any damage means: rebuild from the store
            log.warning(
                "%s index at %s damaged (%s); rebuilding it from the store",
                self.kind,
                self.directory,
                exc,
            )
            self.damaged = self.damaged or [str(exc)]
            self.reset()
            return False

    def destroy(self) -> None:
        """Remove the files; the next open rebuilds from the store."""
        self.reset()
        if self.directory is not None and self.directory.exists():
            shutil.rmtree(self.directory)
