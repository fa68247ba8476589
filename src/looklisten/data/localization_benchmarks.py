"""Readers of the sound-source localisation benchmarks: Flickr-SoundNet and VGG-SS.

The layout and annotation formats are those of the LVS (Chen et al. CVPR 2021,
``hche11/Localizing-Visual-Sounds-the-Hard-Way``) and EZ-VSL (Mo & Morgado ECCV
2022, ``stoneMo/EZ-VSL``: ``datasets.py``) evaluation code, which the published
numbers come from::

    DIR/frames/<id>.jpg        one picture per item
    DIR/audio/<id>.wav         its sound
    DIR/Annotations/<id>.xml   Flickr-SoundNet boxes (EZ-VSL's --test_gt_path)
    DIR/vggss.json             VGG-SS boxes (or DIR/metadata/vggss.json)

Items (EZ-VSL ``get_test_dataset``): with a test list (``flickr_test.csv``,
``vggss_test.csv``: first column = id), the listed ids that have both a frame
and a sound, sorted; without one, every id with a frame, a sound and an
annotation. An annotation whose frame or sound is missing, and a listed item
without annotation, go to ``failed`` with a reason (the reference code drops
the first silently and stops on the second).

Boxes come out as integer ``(xmin, ymin, xmax, ymax)`` on the 224 x 224 frame
the reference code scores on (:data:`GT_SIZE`):

* Flickr-SoundNet (EZ-VSL ``load_all_bboxes``, LVS ``testset_gt``): for every
  child of the XML root, every grandchild whose tag is ``bbox`` is one
  annotator's box, in pixels of a 256 x 256 frame; its sub-elements after the
  first are xmin, ymin, xmax, ymax, each scaled by ``int(224 * v / 256)``
  (:func:`flickr_coordinate`). Here a box whose sub-elements are named
  ``xmin``, ``ymin``, ``xmax``, ``ymax`` is read by name, otherwise by
  position as the reference does. Grandchildren that are not ``bbox`` are
  skipped and counted (the reference appends an empty box for them and then
  fails to unpack it).
* VGG-SS (LVS ``testset_gt``; EZ-VSL's later ``load_all_bboxes``): ``vggss.json``
  is a list of ``{"file": id, "class": ..., "bbox": [[xmin, ymin, xmax, ymax],
  ...]}`` in [0, 1]; each coordinate becomes ``int(224 * clip(v, 0, 1))``
  (:func:`vggss_coordinate`, truncation).

A malformed annotation file raises ``ValueError`` with one line that names the
file, the element / entry and the reason. XML is parsed with the standard
library's ElementTree (no external entities are fetched); nothing is evaluated
or unpickled.
"""

from __future__ import annotations

import csv
import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Benchmarks known here.
DATASETS = ("flickr", "vggss")
#: Side of the frame the Flickr-SoundNet XML coordinates are given on.
FLICKR_ANNOTATION_SIZE = 256
#: Side of the frame (and ground-truth map) the reference code scores on.
GT_SIZE = 224
#: Coordinate names of a box, in the reference code's order.
BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class BenchmarkItem:
    """One test image of a benchmark.

    Attributes
    ----------
    id : str
        File stem shared by the frame, the sound and the annotation.
    frame, audio : Path
        ``DIR/frames/<id>.jpg`` and ``DIR/audio/<id>.wav``.
    boxes : tuple of (xmin, ymin, xmax, ymax)
        Integer boxes on the 224 x 224 frame (all annotators' on Flickr-SoundNet).
    label : str or None
        VGG-SS ``class``.
    """

    id: str
    frame: Path
    audio: Path
    boxes: tuple[Box, ...]
    label: str | None = None


@dataclass
class Benchmark:
    """The items of a benchmark found in a folder.

    Attributes
    ----------
    dataset : {"flickr", "vggss"}
    annotations : Path
        The annotation folder (Flickr) or file (VGG-SS) read.
    items : list of BenchmarkItem
        Sorted by id.
    failed : list of dict
        ``{"id": ..., "reason": ...}`` for items that cannot be evaluated.
    notes : list of str
        What was skipped or counted and why.
    """

    dataset: str
    annotations: Path
    items: list[BenchmarkItem] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------


def flickr_coordinate(v: int) -> int:
    """A Flickr-SoundNet coordinate (256 px frame) on the 224 px frame: ``int(224 * v / 256)``.

    The reference code's rule (truncation toward zero).
    """
    return int(GT_SIZE * int(v) / FLICKR_ANNOTATION_SIZE)


def vggss_coordinate(v: float) -> int:
    """A VGG-SS coordinate ([0, 1]) on the 224 px frame: ``int(224 * clip(v, 0, 1))``.

    LVS's ``int(224 * max(x, 0))`` and EZ-VSL's ``(np.clip(bbox, 0, 1) *
    224).astype(int)`` (truncation; values above 1 give 224, which slices the
    same as LVS's larger values).
    """
    return int(GT_SIZE * min(max(float(v), 0.0), 1.0))


# ---------------------------------------------------------------------------
# Annotation files
# ---------------------------------------------------------------------------


def _int_text(path: Path, where: str, el: ET.Element) -> int:
    text = (el.text or "").strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path}: {where} <{el.tag}> is {text!r}, not an integer") from None


def _flickr_box(path: Path, where: str, bbox: ET.Element) -> Box:
    """One ``<bbox>``'s (xmin, ymin, xmax, ymax) in 256 px coordinates."""
    subs = list(bbox)
    by_name = {el.tag: el for el in reversed(subs)}  # the first of each name
    if all(k in by_name for k in BOX_KEYS):
        coords = [by_name[k] for k in BOX_KEYS]
    else:
        coords = subs[1:]  # the reference: every sub-element after the first
        if len(coords) != 4:
            raise ValueError(
                f"{path}: {where} has {len(subs)} sub-elements; expected a first one "
                "(e.g. a label) then xmin, ymin, xmax, ymax"
            )
    return tuple(_int_text(path, where, el) for el in coords)  # type: ignore[return-value]


def read_flickr_xml(path: str | os.PathLike) -> tuple[list[Box], int]:
    """The boxes of one Flickr-SoundNet annotation file, in 256 px coordinates.

    Parameters
    ----------
    path : path-like
        ``Annotations/<id>.xml``.

    Returns
    -------
    boxes : list of (xmin, ymin, xmax, ymax), int
        Every ``bbox`` grandchild of the root, in document order (one per
        annotator), as written (not yet scaled: :func:`flickr_coordinate`).
    skipped : int
        Grandchildren of the root that are not ``bbox`` (ignored).

    Raises
    ------
    ValueError
        Not well-formed XML, a box without four coordinates, a coordinate
        that is not an integer: one line naming the file and the element.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not well-formed XML ({e})") from None
    boxes: list[Box] = []
    skipped = 0
    for i, child in enumerate(root):
        for j, grandchild in enumerate(child):
            if grandchild.tag != "bbox":
                skipped += 1
                continue
            where = f"<{child.tag}> {i}, <bbox> {j}"
            boxes.append(_flickr_box(path, where, grandchild))
    return boxes, skipped


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_vggss_json(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """VGG-SS annotations: id -> boxes on the 224 px frame and class.

    Parameters
    ----------
    path : path-like
        ``vggss.json``: a list of objects with ``file`` (the id), ``bbox`` (a
        list of ``[xmin, ymin, xmax, ymax]`` in [0, 1]) and ``class``.

    Returns
    -------
    dict
        ``{id: {"boxes": [(xmin, ymin, xmax, ymax), ...], "class": str | None}}``,
        coordinates by :func:`vggss_coordinate`. A repeated id keeps its last
        entry (as the reference's dict does).

    Raises
    ------
    ValueError
        Not JSON, not a list of objects with ``file`` and ``bbox``, a box that
        is not 4 finite numbers: one line naming the file, the entry and the key.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of objects, got a JSON {type(data).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: entry {i} is a {type(entry).__name__}, not an object")
        for key in ("file", "bbox"):
            if key not in entry:
                raise ValueError(f"{path}: entry {i} has no {key!r} key")
        name, bbox = entry["file"], entry["bbox"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}: entry {i}: 'file' is {name!r}, not a file id")
        if not isinstance(bbox, list):
            raise ValueError(f"{path}: entry {i} ({name}): 'bbox' is not a list of boxes")
        boxes = []
        for j, box in enumerate(bbox):
            if not isinstance(box, list) or len(box) != 4 or not all(map(_is_number, box)):
                raise ValueError(
                    f"{path}: entry {i} ({name}): bbox {j} is {box!r}, not 4 finite numbers"
                )
            boxes.append(tuple(vggss_coordinate(v) for v in box))
        label = entry.get("class")
        out[name] = {"boxes": boxes, "class": label if isinstance(label, str) else None}
    return out


def read_test_list(path: str | os.PathLike) -> list[str]:
    """Ids of a test list: the first column of each non-empty CSV row (LVS / EZ-VSL).

    ``flickr_test.csv`` (``id,count``) and ``vggss_test.csv`` (``id``). Ids are
    stripped of spaces; repeated ids are kept once, in first-seen order.
    """
    path = Path(path)
    ids: list[str] = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if row and row[0].strip():
                ids.append(row[0].strip())
    if not ids:
        raise ValueError(f"{path}: the test list names no item")
    return list(dict.fromkeys(ids))


# ---------------------------------------------------------------------------
# The folder
# ---------------------------------------------------------------------------


def _stems(folder: Path, ext: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected DIR/frames and DIR/audio)")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() == ext and not p.name.startswith(".") and p.is_file()
    }


def annotation_path(root: str | os.PathLike, dataset: str, gt_path=None) -> Path:
    """Where the annotations are: ``gt_path``, else the default under ``root``.

    Flickr-SoundNet: a folder of XML files (default ``DIR/Annotations``).
    VGG-SS: a JSON file (default ``DIR/vggss.json``, then ``DIR/metadata/vggss.json``).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    root = Path(root)
    if dataset == "flickr":
        p = Path(gt_path) if gt_path else root / "Annotations"
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: no folder of Flickr-SoundNet XML annotations")
        return p
    if gt_path:
        p = Path(gt_path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no VGG-SS annotation file (vggss.json)")
        return p
    for p in (root / "vggss.json", root / "metadata" / "vggss.json"):
        if p.is_file():
            return p
    raise FileNotFoundError(f"{root}: no vggss.json (nor metadata/vggss.json); give --gt-path")


def _flickr_boxes(ann: dict[str, Path], ids: list[str], notes: list[str]) -> dict[str, list[Box]]:
    boxes, skipped = {}, 0
    for i in ids:
        raw, k = read_flickr_xml(ann[i])
        skipped += k
        boxes[i] = [tuple(flickr_coordinate(v) for v in b) for b in raw]
    if skipped:
        notes.append(
            f"{skipped} XML element(s) under the annotation roots' children are not <bbox> "
            "and were skipped (the reference code would fail on them)"
        )
    return boxes


def find_benchmark(
    root: str | os.PathLike,
    dataset: str,
    gt_path: str | os.PathLike | None = None,
    test_list: str | os.PathLike | None = None,
) -> Benchmark:
    """The items of a benchmark folder, with their boxes (see the module docstring).

    Parameters
    ----------
    root : path-like
        ``DIR`` with ``frames/`` and ``audio/``.
    dataset : {"flickr", "vggss"}
    gt_path : path-like, optional
        The annotations (:func:`annotation_path`).
    test_list : path-like, optional
        CSV whose first column lists the test ids (:func:`read_test_list`).

    Returns
    -------
    Benchmark
    """
    ann_path = annotation_path(root, dataset, gt_path)
    root = Path(root)
    frames, audio = _stems(root / "frames", ".jpg"), _stems(root / "audio", ".wav")
    bench = Benchmark(dataset, ann_path)
    if dataset == "flickr":
        ann: dict[str, Any] = {p.stem: p for p in sorted(ann_path.glob("*.xml"))}
    else:
        ann = read_vggss_json(ann_path)
    have_files = frames.keys() & audio.keys()

    def missing(i: str) -> str:
        where = (("frames", ".jpg", frames), ("audio", ".wav", audio))
        gone = [f"{d}/{i}{e}" for d, e, found in where if i not in found]
        return "annotated, but " + " and ".join(gone) + " missing"

    if test_list is not None:
        listed = read_test_list(test_list)
        ids = sorted(i for i in listed if i in have_files)
        absent = [i for i in listed if i not in have_files]
        bench.failed += [{"id": i, "reason": missing(i)} for i in absent if i in ann]
        unknown = sum(i not in ann for i in absent)
        if unknown:
            bench.notes.append(
                f"{unknown} listed id(s) have neither files nor an annotation here and were "
                "left out (the reference code leaves out listed ids without files)"
            )
        bench.failed += [{"id": i, "reason": "no annotation"} for i in ids if i not in ann]
        ids = [i for i in ids if i in ann]
    else:
        ids = sorted(have_files & ann.keys())
        bench.failed += [
            {"id": i, "reason": missing(i)} for i in sorted(ann) if i not in have_files
        ]
    if dataset == "flickr":
        boxes = _flickr_boxes(ann, ids, bench.notes)
        bench.items = [BenchmarkItem(i, frames[i], audio[i], tuple(boxes[i])) for i in ids]
    else:
        bench.items = [
            BenchmarkItem(i, frames[i], audio[i], tuple(ann[i]["boxes"]), ann[i]["class"])
            for i in ids
        ]
    return bench
