"""Labels of media files: demo annotations (varying in time), a ``file,label`` CSV, or folders."""

from __future__ import annotations

import csv
import os
from pathlib import Path

__all__ = ["Labels"]


class Labels:
    """Labels of the media files under a folder, possibly varying in time.

    Parameters
    ----------
    root : path-like
        The data folder.
    source : path-like, optional
        ``annotations.jsonl`` (or a folder holding one) from
        :func:`looklisten.data.demo_data.make_demo_data`, or a CSV file with a
        header ``file,label`` (file relative to ``root``, absolute, or a bare
        file name). Default: ``root/annotations.jsonl``, else
        ``root/labels.csv``, else sub-folder names.

    Attributes
    ----------
    kind : str
        ``"annotations"``, ``"csv"`` or ``"folders"``.
    """

    def __init__(self, root: str | os.PathLike, source: str | os.PathLike | None = None):
        self.root = Path(root)
        self._ann: dict[str, dict] | None = None
        self._csv: dict[str, str] | None = None
        src = Path(source) if source is not None else None
        if src is None:
            if (self.root / "annotations.jsonl").is_file():
                src = self.root / "annotations.jsonl"
            elif (self.root / "labels.csv").is_file():
                src = self.root / "labels.csv"
        if src is None:
            self.kind = "folders"
        elif src.is_dir() or src.suffix == ".jsonl":
            from looklisten.data.demo_data import load_annotations

            folder = src if src.is_dir() else src.parent
            if src.is_file() and src.name != "annotations.jsonl":
                raise ValueError(f"{src}: expected an annotations.jsonl file")
            self._ann = load_annotations(folder)
            self.kind = "annotations"
        else:
            self._csv = read_label_csv(src)
            self.kind = "csv"

    def _keys(self, file: str | os.PathLike) -> list[str]:
        p = Path(file)
        keys = []
        try:
            keys.append(p.resolve().relative_to(self.root.resolve()).as_posix())
        except ValueError:
            pass
        keys += [p.as_posix(), str(p.resolve()), p.name]
        return keys

    def __call__(self, file: str | os.PathLike, t: float = 0.0) -> str | None:
        """The label of ``file`` (relative to the root, or absolute) at time ``t`` (s)."""
        if self._ann is not None:
            from looklisten.data.demo_data import label_at

            for key in self._keys(file):
                if key in self._ann:
                    return label_at(self._ann[key], float(t))
            return None
        if self._csv is not None:
            for key in self._keys(file):
                if key in self._csv:
                    return self._csv[key]
            return None
        p = Path(file)
        try:
            rel = p.resolve().relative_to(self.root.resolve())
        except ValueError:
            if p.is_absolute():
                return None
            rel = p  # already relative to the root
        return rel.parts[0] if len(rel.parts) >= 2 else None


def read_label_csv(path: Path) -> dict[str, str]:
    """A ``file,label`` CSV -> {file (as written, and its bare name): label}."""
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a CSV with a 'file,label' header")
        for row in reader:
            f_, lab = (row.get("file") or "").strip(), (row.get("label") or "").strip()
            if f_ and lab:
                out[Path(f_).as_posix()] = lab
                out.setdefault(Path(f_).name, lab)
    return out
