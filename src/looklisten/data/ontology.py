"""The AudioSet ontology and AudioSet-style label sets of media files.

Readers for the two files Google publishes with AudioSet:

* ``ontology.json``: a JSON list of classes, each an object with ``id`` (e.g.
  ``"/m/0dgw9r"``), ``name``, ``description``, ``citation_uri``,
  ``positive_examples``, ``child_ids`` (ids of its children) and
  ``restrictions`` (e.g. ``["abstract"]``, ``["blacklist"]``). The classes form
  a directed acyclic graph: a class may have several parents; the top-level
  classes are those no class lists as a child. See :func:`load_ontology`.
* the segment CSVs (``balanced_train_segments.csv``, ``eval_segments.csv``,
  ...): comment lines starting with ``#``, then rows
  ``YTID, start_seconds, end_seconds, positive_labels`` where
  ``positive_labels`` is a quoted, comma-separated list of class ids. A media
  file is matched by the YouTube id its name starts with
  (``--PJHxphWEs_30000_40000.mp4`` or ``--PJHxphWEs.mp4``). See
  :func:`read_label_sets`, which also reads a simple ``file,labels`` CSV.

Everything is parsed as data (``json`` and ``csv``): nothing is evaluated or
unpickled. A malformed file raises :class:`ValueError` with one line naming the
file, the entry (or line) and the reason.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Ontology", "load_ontology", "read_label_sets", "LabelSets"]

#: The virtual root above the top-level classes (it joins every pair of classes).
ROOT = ""


@dataclass
class Ontology:
    """The AudioSet class graph.

    Attributes
    ----------
    path : str
        The file it was read from.
    ids : list of str
        Class ids in file order.
    names : dict
        id -> display name.
    children, parents : dict
        id -> list of ids (a class may have several parents).
    restrictions : dict
        id -> list of str (``"abstract"``, ``"blacklist"``).
    top : list of str
        Top-level classes (nobody's child), in file order.
    """

    path: str
    ids: list[str]
    names: dict[str, str]
    children: dict[str, list[str]]
    parents: dict[str, list[str]]
    restrictions: dict[str, list[str]]
    top: list[str]
    _up: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    _by_name: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def resolve(self, label: str) -> str | None:
        """The id of a label given as an id or a display name (exact, then any case)."""
        label = label.strip()
        if label in self.names:
            return label
        if not self._by_name:
            for cid in self.ids:
                self._by_name.setdefault(self.names[cid], []).append(cid)
                self._by_name.setdefault(self.names[cid].casefold(), []).append(cid)
        hits = self._by_name.get(label) or self._by_name.get(label.casefold()) or []
        return hits[0] if len(set(hits)) == 1 else None

    def ancestors(self, cid: str) -> dict[str, int]:
        """Every ancestor of ``cid`` (itself included, and the virtual root ``""``)
        with the fewest parent steps that lead to it.

        Returns
        -------
        dict
            ancestor id -> steps (``cid`` -> 0; ``""`` -> the class's depth, top
            level being depth 1).
        """
        if cid not in self._up:
            up = {cid: 0}
            frontier = [cid]
            steps = 0
            while frontier:
                steps += 1
                nxt = []
                for c in frontier:
                    for p in self.parents[c] or [ROOT]:
                        if p not in up:
                            up[p] = steps
                            if p != ROOT:
                                nxt.append(p)
                frontier = nxt
            self._up[cid] = up
        return self._up[cid]

    def depth(self, cid: str) -> int:
        """Shortest number of steps from the virtual root (top-level classes: 1)."""
        return self.ancestors(cid)[ROOT]

    def distance(self, a: str, b: str) -> int:
        """Tree distance: the fewest edges on a path from ``a`` up to a common
        ancestor and down to ``b`` (best path through the DAG; the virtual root
        joins top-level classes, so two top-level classes are 2 apart).

        Same class 0; parent and child 1; siblings 2.
        """
        ua, ub = self.ancestors(a), self.ancestors(b)
        if len(ub) < len(ua):
            ua, ub = ub, ua
        return min(s + ub[c] for c, s in ua.items() if c in ub)


def _fail(path, where: str, reason: str):
    raise ValueError(f"{path}: {where}: {reason}")


def _entry_fields(path, i: int, entry) -> tuple[str, str, list[str], list[str]]:
    if not isinstance(entry, dict):
        _fail(path, f"entry {i}", f"expected an object, got {type(entry).__name__}")
    cid = entry.get("id")
    if not isinstance(cid, str) or not cid:
        _fail(path, f"entry {i}", "missing 'id' (a non-empty string)")
    kids = entry.get("child_ids")
    if not isinstance(kids, list) or not all(isinstance(k, str) for k in kids):
        _fail(path, f"entry {i} ({cid})", "missing 'child_ids' (a list of ids)")
    name = entry.get("name", cid)
    if not isinstance(name, str):
        _fail(path, f"entry {i} ({cid})", "'name' is not a string")
    restr = entry.get("restrictions", [])
    if not isinstance(restr, list) or not all(isinstance(r, str) for r in restr):
        _fail(path, f"entry {i} ({cid})", "'restrictions' is not a list of strings")
    return cid, name, list(kids), list(restr)


def _check_acyclic(path, ids: list[str], children: dict[str, list[str]]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in ids:
        if start in state:
            continue
        stack = [(start, iter(children[start]))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            kid = next(it, None)
            if kid is None:
                state[node] = 2
                stack.pop()
            elif state.get(kid) == 1:
                _fail(path, f"entry {ids.index(kid)} ({kid})", f"a cycle (through {node})")
            elif kid not in state:
                state[kid] = 1
                stack.append((kid, iter(children[kid])))


def load_ontology(path: str | os.PathLike) -> Ontology:
    """Read AudioSet's ``ontology.json`` (the published format; see the module docstring).

    Raises
    ------
    ValueError
        One line: the file, the entry (index and id) and what is wrong (not a
        list, missing ``id`` / ``child_ids``, a duplicate id, a child id that
        is not defined, a cycle).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        _fail(path, f"line {e.lineno}", f"not valid JSON ({e.msg})")
    except UnicodeDecodeError:
        _fail(path, "file", "not UTF-8 text")
    if not isinstance(raw, list):
        _fail(path, "top level", f"expected a JSON list of classes, got {type(raw).__name__}")
    ids, names, children, restrictions, where = [], {}, {}, {}, {}
    for i, entry in enumerate(raw):
        cid, name, kids, restr = _entry_fields(path, i, entry)
        if cid in names:
            _fail(path, f"entry {i} ({cid})", f"duplicate id (also entry {where[cid]})")
        ids.append(cid)
        names[cid], children[cid], restrictions[cid], where[cid] = name, kids, restr, i
    parents: dict[str, list[str]] = {cid: [] for cid in ids}
    for cid in ids:
        for kid in children[cid]:
            if kid not in names:
                _fail(path, f"entry {where[cid]} ({cid})", f"child id {kid!r} is not defined")
            if cid not in parents[kid]:
                parents[kid].append(cid)
    _check_acyclic(path, ids, children)
    top = [cid for cid in ids if not parents[cid]]
    return Ontology(str(path), ids, names, children, parents, restrictions, top)


# ---------------------------------------------------------------------------
# Label sets
# ---------------------------------------------------------------------------


def _split_labels(text: str, onto: Ontology, where: str) -> tuple[str, ...]:
    """Ids of a ``;``- or ``,``-separated list of ids or names (names may hold commas)."""
    if ";" in text:
        pieces = [p.strip() for p in text.split(";")]
    else:
        pieces = [p.strip() for p in text.split(",")]
    pieces = [p for p in pieces if p]
    out: list[str] = []
    i = 0
    while i < len(pieces):
        # the longest run of pieces that names a class ("Male speech, man speaking")
        for j in range(len(pieces), i, -1):
            cid = onto.resolve(", ".join(pieces[i:j]))
            if cid is not None:
                break
        else:
            raise ValueError(
                f"{where}: unknown label {pieces[i]!r} (not an id or name in {onto.path})"
            )
        if cid not in out:
            out.append(cid)
        i = j
    return tuple(out)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_segments(path: Path, rows: list[tuple[int, list[str]]], onto: Ontology):
    """AudioSet segment rows -> {YTID: [(start, end, ids), ...]}."""
    out: dict[str, list[tuple[float, float, tuple[str, ...]]]] = {}
    for line, row in rows:
        if len(row) < 4 or not (_is_float(row[1]) and _is_float(row[2])):
            raise ValueError(
                f"{path}: line {line}: expected YTID, start_seconds, end_seconds, "
                f'"positive_labels", got {",".join(row)[:80]!r}'
            )
        ids = _split_labels(",".join(row[3:]), onto, f"{path}: line {line}")
        out.setdefault(row[0].strip(), []).append((float(row[1]), float(row[2]), ids))
    return out


def read_label_sets(path: str | os.PathLike, onto: Ontology) -> dict[str, object]:
    """Read the label sets of media files from a CSV, as ontology ids.

    Two layouts:

    * AudioSet segments: ``#`` comment lines, then ``YTID, start_seconds,
      end_seconds, "id,id,..."`` (spaces after separators allowed);
    * ``file,labels`` (or ``file,label``) with a header: the file (relative,
      absolute or a bare name) and its labels, ids or display names separated
      by ``;`` or ``,`` (quoted).

    Returns
    -------
    dict
        ``{"kind": "segments" | "files", "map": {...}}``: segments map
        YTID -> list of (start, end, ids); files map file (as written, and its
        bare name) -> ids.

    Raises
    ------
    ValueError
        One line naming the file, the line and the problem (unknown label,
        malformed row, no header).
    """
    path = Path(path)
    rows: list[tuple[int, list[str]]] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, skipinitialspace=True)
        try:
            for row in reader:
                if not row or not "".join(row).strip():
                    continue
                if row[0].lstrip().startswith("#"):
                    continue
                rows.append((reader.line_num, [c.strip() for c in row]))
        except csv.Error as e:
            raise ValueError(f"{path}: line {reader.line_num}: {e}") from None
    if not rows:
        raise ValueError(f"{path}: no labelled rows")
    header = [c.lower() for c in rows[0][1]]
    if "file" in header and ({"labels", "label"} & set(header)):
        fi = header.index("file")
        li = header.index("labels") if "labels" in header else header.index("label")
        files: dict[str, tuple[str, ...]] = {}
        for line, row in rows[1:]:
            if len(row) <= max(fi, li) or not row[fi] or not row[li]:
                continue
            ids = _split_labels(row[li], onto, f"{path}: line {line}")
            files[Path(row[fi]).as_posix()] = ids
            files.setdefault(Path(row[fi]).name, ids)
        return {"kind": "files", "map": files}
    return {"kind": "segments", "map": _read_segments(path, rows, onto)}


_SEGMENT_SUFFIX = re.compile(r"^(.+)_(\d+)_(\d+)$")


def _ytid_keys(stem: str) -> list[tuple[str, float | None]]:
    """Candidate (YTID, start seconds or None) of a file stem."""
    keys: list[tuple[str, float | None]] = [(stem, None)]
    m = _SEGMENT_SUFFIX.match(stem)
    if m:
        keys.append((m.group(1), int(m.group(2)) / 1000.0))
    keys.append((stem[:11], None))  # YouTube ids are 11 characters (may start with '-')
    return keys


class LabelSets:
    """Label sets (tuples of ontology ids) of the media files under a folder.

    Parameters
    ----------
    root : path-like
        The data folder.
    source : path-like
        A CSV read by :func:`read_label_sets`.
    onto : Ontology

    Attributes
    ----------
    kind : str
        ``"audioset-segments"`` or ``"csv-label-sets"``.
    """

    def __init__(self, root: str | os.PathLike, source: str | os.PathLike, onto: Ontology):
        self.root = Path(root)
        parsed = read_label_sets(source, onto)
        self._map = parsed["map"]
        self._segments = parsed["kind"] == "segments"
        self.kind = "audioset-segments" if self._segments else "csv-label-sets"

    def _from_segments(self, stem: str) -> tuple[str, ...] | None:
        for ytid, start in _ytid_keys(stem):
            segs = self._map.get(ytid)
            if not segs:
                continue
            if start is not None:
                for s, _, ids in segs:
                    if abs(s - start) < 1e-3:
                        return ids
            if len(segs) == 1 or start is None:
                merged: list[str] = []
                for _, _, ids in segs:
                    merged += [i for i in ids if i not in merged]
                return tuple(merged)
        return None

    def __call__(self, file: str | os.PathLike, t: float = 0.0) -> tuple[str, ...] | None:
        """The label set of ``file`` (time ``t`` is ignored: labels are per clip)."""
        p = Path(file)
        if self._segments:
            return self._from_segments(p.stem)
        keys = [p.as_posix(), str(p.resolve()), p.name]
        try:
            keys.insert(0, p.resolve().relative_to(self.root.resolve()).as_posix())
        except ValueError:
            pass
        for key in keys:
            if key in self._map:
                return self._map[key]
        return None
