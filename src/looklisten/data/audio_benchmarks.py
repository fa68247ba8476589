"""Readers for published sound-classification benchmarks, with their official folds.

L3-Net's audio transfer experiment (Arandjelović & Zisserman, "Look, Listen and
Learn", ICCV 2017, §4.2) trains a linear SVM on the audio branch's conv4_2
features and scores it on ESC-50 with the data set's own cross-validation folds.
:func:`read_benchmark` reads a user's copy of such a data set exactly as its
authors publish it; :func:`looklisten.evaluation.probe.evaluate_probe` runs the
protocol on it.

Data sets
---------
``esc50``
    ESC-50 (K. J. Piczak, "ESC: Dataset for Environmental Sound
    Classification", ACM Multimedia 2015): ``DIR/meta/esc50.csv`` with the
    header ``filename,fold,target,category,esc10,src_file,take`` and the clips
    in ``DIR/audio/<filename>``; 5 official folds (the ``fold`` column, 1..5),
    50 classes (``target`` 0..49, named by ``category``). ``esc10=True`` keeps
    the ESC-10 subset, the rows whose ``esc10`` column is ``True`` (the file
    writes Python's ``True`` / ``False``).
``urbansound8k``
    UrbanSound8K (J. Salamon, C. Jacoby and J. P. Bello, "A Dataset and
    Taxonomy for Urban Sound Research", ACM Multimedia 2014):
    ``DIR/metadata/UrbanSound8K.csv`` with the header
    ``slice_file_name,fsID,start,end,salience,fold,classID,class`` and the clips
    in per-fold sub-folders ``DIR/audio/fold<fold>/<slice_file_name>``; 10
    official folds (1..10), 10 classes (``classID`` 0..9, named by ``class``).

Errors
------
An annotation file that does not follow its format raises a ValueError of one
line, ``<file>:<line>: <reason>`` (missing column, empty file, a fold that is
not an integer or is out of range, a class index outside the data set's range
or named two ways, a file name that is not a bare name, a file listed twice).
Nothing is evaluated or unpickled: the CSV is read as text. Audio files the CSV
lists but that are not on disk are skipped and described in ``failed``; a CSV
none of whose files exists is an error.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DATASETS", "Clip", "Benchmark", "read_benchmark", "read_esc50", "read_urbansound8k"]

DATASETS = ("esc50", "urbansound8k")

ESC50_PROTOCOL = (
    "ESC-50 (Piczak, 'ESC: Dataset for Environmental Sound Classification', ACM MM 2015): "
    "5-s clips, 50 classes, the 5 official folds of meta/esc50.csv's fold column (the data "
    "set's authors keep the clips cut from one source recording in one fold); L3-Net's "
    "audio transfer protocol (Arandjelovic & Zisserman, 'Look, Listen and Learn', ICCV 2017, "
    "section 4.2): a linear SVM on conv4_2 features, clip accuracy averaged over the folds"
)
ESC10_PROTOCOL = ESC50_PROTOCOL.replace(
    "5-s clips, 50 classes,", "its ESC-10 subset (rows with esc10 True: 10 classes),"
)
US8K_PROTOCOL = (
    "UrbanSound8K (Salamon, Jacoby & Bello, 'A Dataset and Taxonomy for Urban Sound Research', "
    "ACM MM 2014): slices of at most 4 s, 10 classes, the 10 official folds of "
    "metadata/UrbanSound8K.csv's fold column (audio/fold<k>/; the authors ask for 10-fold "
    "cross-validation on these folds, never reshuffled: slices of one recording share a "
    "fold); the classifier as in L3-Net's audio transfer protocol (Arandjelovic & "
    "Zisserman, ICCV 2017, section 4.2)"
)


@dataclass(frozen=True)
class Clip:
    """One annotated clip of a benchmark.

    Attributes
    ----------
    path : str
        The audio file.
    label : str
        Class name (ESC-50 ``category``, UrbanSound8K ``class``).
    fold : int
        Official fold, from 1.
    class_index : int
        The data set's class number (ESC-50 ``target``, UrbanSound8K ``classID``).
    line : int
        Line of the annotation file that lists the clip.
    """

    path: str
    label: str
    fold: int
    class_index: int
    line: int


@dataclass
class Benchmark:
    """A benchmark as read from a user's copy.

    Attributes
    ----------
    dataset : str
        ``"esc50"``, ``"esc10"`` or ``"urbansound8k"``.
    clips : list of Clip
        The clips whose audio file exists, in the annotation file's order.
    folds : list of int
        The official folds (1..5 or 1..10), whether or not clips remain in each.
    classes : dict int -> str
        Class index -> name, over the listed clips.
    protocol : str
        Where the data set and its folds come from.
    annotations : str
        The annotation file read.
    listed : int
        Rows selected from the annotation file (the clips plus the missing ones).
    failed : list of str
        ``"path: reason"`` of each listed file that is not on disk.
    """

    dataset: str
    clips: list[Clip]
    folds: list[int]
    classes: dict[int, str]
    protocol: str
    annotations: str
    listed: int
    failed: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# CSV reading with one-line errors
# ---------------------------------------------------------------------------


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV with a header naming at least ``required``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ValueError(f"{path}:1: empty file (no header)")
        header = [h.strip() for h in header]
        for col in required:
            if col not in header:
                raise ValueError(f"{path}:1: missing column {col!r} (header: {','.join(header)})")
        for values in reader:
            if not values or not any(v.strip() for v in values):
                continue  # blank line
            if len(values) != len(header):
                raise ValueError(
                    f"{path}:{reader.line_num}: {len(values)} fields, the header has {len(header)}"
                )
            yield reader.line_num, {h: v.strip() for h, v in zip(header, values)}


def _int(row: dict[str, str], col: str, lo: int, hi: int, where: str) -> int:
    value = row[col]
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{where}: {col} {value!r} is not an integer") from None
    if not lo <= n <= hi:
        raise ValueError(f"{where}: {col} {n} is outside {lo}..{hi}")
    return n


def _bool(row: dict[str, str], col: str, where: str) -> bool:
    value = row[col]
    if value.lower() not in ("true", "false"):
        raise ValueError(f"{where}: {col} must be True or False, got {value!r}")
    return value.lower() == "true"


def _file_name(row: dict[str, str], col: str, where: str) -> str:
    name = row[col]
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"{where}: {col} {name!r} is not a bare file name")
    return name


@dataclass(frozen=True)
class _Format:
    """Columns and ranges of one published annotation file."""

    dataset: str
    annotations: str  # relative to the data set's folder
    file_col: str
    label_col: str
    index_col: str
    n_folds: int
    n_classes: int
    audio: Callable[[Path, str, int], Path]  # (root, file name, fold) -> audio path
    protocol: str
    extra: tuple[str, ...] = ()


ESC50 = _Format(
    "esc50",
    "meta/esc50.csv",
    "filename",
    "category",
    "target",
    5,
    50,
    lambda root, name, fold: root / "audio" / name,
    ESC50_PROTOCOL,
    ("esc10",),
)
US8K = _Format(
    "urbansound8k",
    "metadata/UrbanSound8K.csv",
    "slice_file_name",
    "class",
    "classID",
    10,
    10,
    lambda root, name, fold: root / "audio" / f"fold{fold}" / name,
    US8K_PROTOCOL,
)


def _read(
    fmt: _Format,
    root: str | os.PathLike,
    keep: Callable[[dict, str], bool] | None = None,
    none_kept: str = "no row selected",
) -> Benchmark:
    """Read ``root/fmt.annotations``; rows for which ``keep(row, where)`` is False are left out."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    csv_path = root / fmt.annotations
    required = (fmt.file_col, "fold", fmt.index_col, fmt.label_col, *fmt.extra)
    clips: list[Clip] = []
    failed: list[str] = []
    names: dict[int, tuple[str, int]] = {}  # class index -> (name, first line)
    indices: dict[str, tuple[int, int]] = {}  # class name -> (index, first line)
    seen: dict[str, int] = {}
    listed, last = 0, 1
    for line, row in _rows(csv_path, required):
        where, last = f"{csv_path}:{line}", line
        name = _file_name(row, fmt.file_col, where)
        fold = _int(row, "fold", 1, fmt.n_folds, where)
        index = _int(row, fmt.index_col, 0, fmt.n_classes - 1, where)
        label = row[fmt.label_col]
        if not label:
            raise ValueError(f"{where}: empty {fmt.label_col}")
        _check_class(names, indices, index, label, line, where, fmt)
        path = fmt.audio(root, name, fold)
        key = path.relative_to(root).as_posix()
        if key in seen:
            raise ValueError(f"{where}: {key} listed again (first on line {seen[key]})")
        seen[key] = line
        if keep is not None and not keep(row, where):
            continue
        listed += 1
        if not path.is_file():
            failed.append(f"{path}: missing (listed on {csv_path.name}:{line})")
            continue
        clips.append(Clip(str(path), label, fold, index, line))
    if not seen:
        raise ValueError(f"{csv_path}:{last}: no clips listed after the header")
    if not listed:
        raise ValueError(f"{csv_path}: {none_kept}")
    if not clips:
        raise ValueError(
            f"{csv_path}: none of the {listed} audio files it lists exists under {root / 'audio'}"
        )
    classes = {c.class_index: c.label for c in clips}
    return Benchmark(
        fmt.dataset,
        clips,
        list(range(1, fmt.n_folds + 1)),
        dict(sorted(classes.items())),
        fmt.protocol,
        str(csv_path),
        listed,
        failed,
    )


def _check_class(names, indices, index, label, line, where, fmt: _Format) -> None:
    """One name per class index and one index per name, or a one-line error."""
    if index in names and names[index][0] != label:
        first, at = names[index]
        raise ValueError(
            f"{where}: {fmt.index_col} {index} is {label!r} here but {first!r} on line {at}"
        )
    if label in indices and indices[label][0] != index:
        first, at = indices[label]
        raise ValueError(
            f"{where}: {fmt.label_col} {label!r} is {fmt.index_col} {index} here but "
            f"{first} on line {at}"
        )
    names.setdefault(index, (label, line))
    indices.setdefault(label, (index, line))


# ---------------------------------------------------------------------------
# The readers
# ---------------------------------------------------------------------------


def read_esc50(root: str | os.PathLike, esc10: bool = False) -> Benchmark:
    """ESC-50 (or its ESC-10 subset) from ``root/meta/esc50.csv`` and ``root/audio/``.

    Parameters
    ----------
    root : path-like
        The data set's folder, as published.
    esc10 : bool
        Keep only the rows whose ``esc10`` column is ``True``.

    Returns
    -------
    Benchmark
        ``dataset`` is ``"esc10"`` with ``esc10``; 5 official folds.
    """
    import dataclasses

    def keep(row: dict, where: str) -> bool:
        member = _bool(row, "esc10", where)  # checked on every row
        return member or not esc10

    bench = _read(ESC50, root, keep, "no row has esc10 True")
    if not esc10:
        return bench
    return dataclasses.replace(bench, dataset="esc10", protocol=ESC10_PROTOCOL)


def read_urbansound8k(root: str | os.PathLike) -> Benchmark:
    """UrbanSound8K from ``root/metadata/UrbanSound8K.csv`` and ``root/audio/fold<k>/``.

    Parameters
    ----------
    root : path-like
        The data set's folder, as published.

    Returns
    -------
    Benchmark
        10 official folds.
    """
    return _read(US8K, root)


def read_benchmark(dataset: str, root: str | os.PathLike, esc10: bool = False) -> Benchmark:
    """:func:`read_esc50` or :func:`read_urbansound8k` by name (one of :data:`DATASETS`)."""
    if dataset == "esc50":
        return read_esc50(root, esc10)
    if esc10:
        raise ValueError("esc10 selects a subset of ESC-50: use it with the esc50 data set")
    if dataset == "urbansound8k":
        return read_urbansound8k(root)
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
