"""Flickr-SoundNet / VGG-SS evaluation: readers, the reference (EZ-VSL) metrics, the CLI.

Fixtures are written here in the published formats (JPEG frames, WAV sounds,
Flickr XML with three annotators, vggss.json, a test-list CSV); the metric
cases are computed by hand. The model is a random-weight ``tiny`` AVOL-Net
(plumbing and consistency, not what a trained model localises).
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.localization_benchmarks import (
    find_benchmark,
    flickr_coordinate,
    read_flickr_xml,
    read_test_list,
    read_vggss_json,
    vggss_coordinate,
)
from looklisten.evaluation.benchmark_localization import evaluate_benchmark_localization
from looklisten.evaluation.map_metrics import (
    REFERENCE_AUC_THRESHOLDS,
    auc_21,
    consensus_map,
    reference_ciou,
    reference_prediction,
    reference_summary,
    reference_upsample,
    union_map,
    whole_image,
)
from looklisten.inputs.prepare import benchmark_frame, middle_window
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model

# ---------------------------------------------------------------------------
# fixtures in the published formats
# ---------------------------------------------------------------------------


def write_jpeg(path: Path, h: int, w: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="JPEG", quality=90)


def write_wav(path: Path, seconds: float, sr: int, channels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = (0.3 * rng.standard_normal((n, channels)) * 32767).clip(-32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(x.tobytes())


def positional_box(label: str, *coords: int) -> str:
    """The reference's reading: the first sub-element, then xmin, ymin, xmax, ymax."""
    return "<bbox><label>{}</label>{}</bbox>".format(label, "".join(f"<v>{c}</v>" for c in coords))


def named_box(xmin: int, ymin: int, xmax: int, ymax: int) -> str:
    # named coordinates in another order than the reference's positions
    return (
        f"<bbox><name>dog</name><ymin>{ymin}</ymin><xmin>{xmin}</xmin>"
        f"<ymax>{ymax}</ymax><xmax>{xmax}</xmax></bbox>"
    )


def write_xml(path: Path, boxes: list[str], extra: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><filename>{path.stem}.jpg</filename>"
        f"<bboxes>{''.join(boxes)}{extra}</bboxes></annotation>"
    )


#: Three annotators per image; boxes touch the 256 border and overlap.
FLICKR_BOXES = {
    "1001": [(0, 0, 256, 128), (10, 20, 200, 256), (128, 64, 256, 256)],
    "1002": [(30, 30, 120, 120), (40, 40, 130, 130), (200, 200, 256, 256)],
    "1003": [(64, 64, 192, 192), (64, 64, 192, 192), (0, 0, 32, 32)],
    "1004": [(100, 0, 256, 100), (90, 10, 250, 110), (0, 150, 80, 256)],
}


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    root = tmp_path_factory.mktemp("flickr")
    sizes = {"1001": (97, 131), "1002": (300, 64), "1003": (255, 257), "1004": (150, 200)}
    sounds = {  # seconds, rate, channels
        "1001": (2.5, 44100, 2),  # stereo 44.1 kHz 16-bit
        "1002": (0.3, 16000, 1),  # shorter than the 1 s window: tiled
        "1003": (3.0, 48000, 1),
        "1004": (1.5, 22050, 2),
    }
    for k, (i, boxes) in enumerate(FLICKR_BOXES.items()):
        write_jpeg(root / "frames" / f"{i}.jpg", *sizes[i], seed=k)
        write_wav(root / "audio" / f"{i}.wav", *sounds[i], seed=k)
        if i == "1002":  # named coordinates and a grandchild that is not a box
            write_xml(root / "Annotations" / f"{i}.xml", [named_box(*b) for b in boxes], "<note/>")
        else:
            write_xml(root / "Annotations" / f"{i}.xml", [positional_box("a", *b) for b in boxes])
    # 1005: a frame that is not a picture; 1006: a sound that is not a WAV
    (root / "frames" / "1005.jpg").write_bytes(b"not a jpeg at all" * 10)
    write_wav(root / "audio" / "1005.wav", 1.0, 16000, 1, seed=5)
    write_jpeg(root / "frames" / "1006.jpg", 80, 90, seed=6)
    (root / "audio" / "1006.wav").write_bytes(b"RIFF....garbage" * 10)
    for i in ("1005", "1006", "1007"):  # 1007: an annotation without files
        write_xml(root / "Annotations" / f"{i}.xml", [positional_box("a", 0, 0, 128, 128)])
    # 1008: files but no annotation
    write_jpeg(root / "frames" / "1008.jpg", 64, 64, seed=8)
    write_wav(root / "audio" / "1008.wav", 1.0, 16000, 1, seed=8)
    ids = [*FLICKR_BOXES, "1005", "1006", "1007", "1008", "9999"]
    (root / "flickr_test.csv").write_text("".join(f"{i},{k}\n" for k, i in enumerate(ids)))
    return root


@pytest.fixture(scope="module")
def avol_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_run")
    torch.manual_seed(0)
    cfg = get_config("tiny", arch="avol")
    save_checkpoint(root / "avol", create_model(cfg).eval(), cfg)
    return root / "avol"


# ---------------------------------------------------------------------------
# hand-computed rules
# ---------------------------------------------------------------------------


def test_flickr_coordinates_are_scaled_from_256_to_224_by_truncation():
    assert [flickr_coordinate(v) for v in (0, 1, 100, 128, 255, 256)] == [
        0,
        0,
        87,  # 87.5
        112,
        223,  # 223.125
        224,
    ]
    assert [vggss_coordinate(v) for v in (-0.2, 0.0, 0.26875, 0.5, 1.0, 1.7)] == [
        0,
        0,
        60,  # 60.2
        112,
        224,
        224,
    ]


def test_consensus_map_is_half_per_annotator_capped_at_one():
    # three annotators on a 4x4 frame: one box alone, two identical overlapping it
    gt = consensus_map([(0, 0, 2, 2), (1, 1, 3, 3), (1, 1, 3, 3)], size=4)
    want = np.array(
        [
            [0.5, 0.5, 0.0, 0.0],
            [0.5, 1.0, 1.0, 0.0],  # (1, 1): three boxes -> 1.5 -> capped at 1
            [0.0, 1.0, 1.0, 0.0],  # two boxes -> 1
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(gt, want)
    np.testing.assert_array_equal(
        union_map([(0, 0, 2, 2), (1, 1, 3, 3)], size=4), (want > 0).astype(float)
    )
    # a box past the frame is cut off; an empty or inverted one adds nothing
    assert consensus_map([(2, 2, 9, 9), (2, 2, 9, 9), (3, 0, 1, 4)], size=4).sum() == 4


def test_reference_prediction_keeps_ties_at_the_median_rank():
    h = np.array([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    # sorted: 0 0 0 0 1 1 1 1, rank int(8 * 0.5) = 4 -> thr 1: the four ones (>=), not none (>)
    np.testing.assert_array_equal(reference_prediction(h), h == 1)
    gt = np.array([[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    # hits 1 + 1 (the 0.5 pixel is missed); |gt| 2.5; predicted outside gt: 2
    assert reference_ciou(h, gt) == pytest.approx(2 / 4.5)
    # distinct values on 3x3: rank int(4.5) = 4 -> the five values >= 4
    assert reference_prediction(np.arange(9.0).reshape(3, 3)).sum() == 5
    # a constant map is left as is and predicts every pixel
    assert reference_prediction(np.full((3, 3), 7.0)).all()


def test_whole_image_baseline_scores_the_gt_share():
    binary = union_map([(10, 20, 110, 220)])
    c = reference_ciou(whole_image(224, 224), binary)
    assert c == pytest.approx(binary.sum() / (224 * 224))
    soft = consensus_map([(0, 0, 100, 100), (50, 50, 150, 150), (50, 50, 150, 150)])
    # soft: the whole image earns sum(gt) and pays for the pixels with gt == 0
    assert reference_ciou(whole_image(224, 224), soft) == pytest.approx(
        soft.sum() / (soft.sum() + np.sum(soft == 0))
    )


def test_auc_over_21_thresholds_by_hand():
    c = [0.12, 0.62, 1.0]
    # success: 1 at t = 0, .05, .1; 2/3 at .15 .. .6 (10); 1/3 at .65 .. 1 (8)
    want = 0.05 * (3 + 10 * 2 / 3 + 8 / 3 - (1 + 1 / 3) / 2)
    assert auc_21(c) == pytest.approx(want)
    assert auc_21(c) == pytest.approx(np.mean([auc_21([v]) for v in c]))  # linear
    s = reference_summary(c)
    assert s == pytest.approx({"ciou@0.5": 2 / 3, "auc": want, "mean_ciou": np.mean(c)})
    # the reference's 0.05 * 3 is 0.15000000000000002: a cIoU of exactly 0.15 misses it
    assert REFERENCE_AUC_THRESHOLDS[3] > 0.15
    assert auc_21([0.15]) == pytest.approx(0.05 + 0.05 + 0.025)  # success 1, 1, 1, 0, ..


def test_reference_upsample_pins_the_corners():
    m = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    up = reference_upsample(m, 5)
    assert up.shape == (5, 5)
    assert up[0, 0] == 0 and up[0, -1] == 1 and up[-1, 0] == 2 and up[-1, -1] == 3
    assert up[2, 2] == pytest.approx(1.5)  # align_corners=True: the centre is the mean


def test_middle_window_is_centred_clipped_and_tiled():
    x = np.arange(10, dtype=np.float32) / 10
    np.testing.assert_array_equal(middle_window(x, 4), x[3:7])  # (10 - 4) // 2 = 3
    short = np.array([0.1, 0.2, 2.0], dtype=np.float32)
    np.testing.assert_allclose(middle_window(short, 7), [0.1, 0.2, 1, 0.1, 0.2, 1, 0.1])
    with pytest.raises(ValueError):
        middle_window(np.zeros(0), 4)


def test_benchmark_frame_is_the_whole_picture_at_224(flickr):
    f = benchmark_frame(flickr / "frames" / "1002.jpg")  # 300 x 64: squeezed, not cropped
    assert f.shape == (224, 224, 3) and f.dtype == np.uint8


# ---------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------


def test_flickr_xml_positional_named_and_skipped(flickr):
    boxes, skipped = read_flickr_xml(flickr / "Annotations" / "1001.xml")
    assert boxes == FLICKR_BOXES["1001"] and skipped == 0
    boxes, skipped = read_flickr_xml(flickr / "Annotations" / "1002.xml")
    assert boxes == FLICKR_BOXES["1002"] and skipped == 1


def test_find_benchmark_with_a_test_list(flickr):
    b = find_benchmark(flickr, "flickr", test_list=flickr / "flickr_test.csv")
    assert [it.id for it in b.items] == sorted(FLICKR_BOXES) + ["1005", "1006"]
    it = b.items[0]
    assert it.boxes == ((0, 0, 224, 112), (8, 17, 175, 224), (112, 56, 224, 224))
    reasons = {f["id"]: f["reason"] for f in b.failed}
    assert reasons == {
        "1007": "annotated, but frames/1007.jpg and audio/1007.wav missing",
        "1008": "no annotation",
    }
    assert any("1 listed id" in n for n in b.notes)  # 9999
    assert any("not <bbox>" in n for n in b.notes)
    assert read_test_list(flickr / "flickr_test.csv")[0] == "1001"
    # without a list: every annotated item with files; the annotation without files fails
    b = find_benchmark(flickr, "flickr")
    assert [it.id for it in b.items] == sorted(FLICKR_BOXES) + ["1005", "1006"]
    assert [f["id"] for f in b.failed] == ["1007"]


def test_vggss_json_boxes_are_clipped_to_the_frame(tmp_path):
    p = tmp_path / "vggss.json"
    p.write_text(
        json.dumps(
            [
                {"file": "a", "class": "dog barking", "bbox": [[-0.1, 0.2, 1.3, 0.9]]},
                {"file": "b", "class": "cat", "bbox": [[0, 0, 0.5, 0.5], [0.25, 0.25, 1, 1]]},
            ]
        )
    )
    ann = read_vggss_json(p)
    assert ann["a"] == {"boxes": [(0, 44, 224, 201)], "class": "dog barking"}
    assert ann["b"]["boxes"] == [(0, 0, 112, 112), (56, 56, 224, 224)]


@pytest.mark.parametrize(
    "text, where",
    [
        ("<annotation><bboxes><bbox>", "not well-formed XML"),
        (
            "<annotation><b>" + positional_box("x", 1, 2, 3.5, 4) + "</b></annotation>",
            "<v> is '3.5', not an integer",
        ),
        ("<annotation><b><bbox><l/><v>1</v><v>2</v></bbox></b></annotation>", "<bbox> 0"),
    ],
)
def test_a_malformed_xml_is_one_clear_line(tmp_path, text, where):
    p = tmp_path / "x.xml"
    p.write_text(text)
    with pytest.raises(ValueError) as e:
        read_flickr_xml(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and where in msg


@pytest.mark.parametrize(
    "text, where",
    [
        ("[{", "not valid JSON"),
        ('{"file": "a"}', "expected a list of objects"),
        ('[{"file": "a"}]', "entry 0 has no 'bbox' key"),
        ('[{"file": "a", "bbox": [[0, 0, 1, 1]]}, 3]', "entry 1 is a int"),
        ('[{"file": "a", "bbox": [[0.1, 0.2, 0.3]]}]', "entry 0 (a): bbox 0 is [0.1, 0.2, 0.3]"),
        ('[{"file": "a", "bbox": [[0, 0, "1", 1]]}]', "not 4 finite numbers"),
    ],
)
def test_a_malformed_vggss_json_is_one_clear_line(tmp_path, text, where):
    p = tmp_path / "vggss.json"
    p.write_text(text)
    with pytest.raises(ValueError) as e:
        read_vggss_json(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and where in msg


# ---------------------------------------------------------------------------
# the evaluation
# ---------------------------------------------------------------------------


def test_eval_localization_flickr_end_to_end(flickr, avol_run, capsys):
    args = ["eval", "localization", str(flickr), "--checkpoint", str(avol_run)]
    rc = main(
        args + ["--dataset", "flickr", "--test-list", str(flickr / "flickr_test.csv"), "--save"]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    res = json.loads(captured.out)
    assert res["n"] == 4 and res["dataset"] == "flickr"
    assert {f["id"] for f in res["failed"]} == {"1005", "1006", "1007", "1008"}
    assert all("\n" not in f["reason"] for f in res["failed"])
    assert any("tiled" in n for n in res["notes"])  # 1002's 0.3 s
    assert res["map_size"] == [9, 9]  # tiny: 224 px -> 144 px in, stride 16
    # the whole image scores each gt's share as the reference computes it
    gts = [
        consensus_map([tuple(flickr_coordinate(v) for v in b) for b in bs])
        for bs in FLICKR_BOXES.values()
    ]
    share = [g.sum() / (g.sum() + np.sum(g == 0)) for g in gts]
    w = res["baselines"]["whole_image"]
    assert w["mean_ciou"] == pytest.approx(np.mean(share), abs=1e-4)
    assert w["ciou@0.5"] == pytest.approx(np.mean(np.asarray(share) >= 0.5))
    for m in (res["avol"], *res["baselines"].values()):
        assert 0 <= m["ciou@0.5"] <= 1 and 0 <= m["auc"] <= 1 and 0 < m["pixel_ap"] <= 1
        assert 0 <= m["pointing"] <= 1
    vs = res["avol_minus_best_baseline"]
    for key in ("ciou@0.5", "auc", "mean_ciou", "pixel_ap", "pointing"):
        best = max(res["baselines"], key=lambda b: res["baselines"][b][key])
        assert vs[key]["baseline"] == best
        want = res["avol"][key] - res["baselines"][best][key]
        assert vs[key]["difference"] == pytest.approx(want, abs=2e-4)
        assert vs[key]["ci95"][0] <= vs[key]["difference"] <= vs[key]["ci95"][1]
    assert res["published"]["ezvsl"] == pytest.approx(
        {"ciou@0.5": 0.819, "auc": 0.626, "source": res["published"]["ezvsl"]["source"]}
    )
    assert "EZ-VSL" in res["protocol"]["reference"]
    saved = json.loads((avol_run / "eval" / "localization_flickr.json").read_text())
    assert saved["n"] == 4


def test_eval_localization_vggss_api(flickr, avol_run, tmp_path):
    root = tmp_path / "vggss"
    (root / "frames").mkdir(parents=True)
    (root / "audio").mkdir()
    for i in ("1001", "1003"):
        for d, e in (("frames", ".jpg"), ("audio", ".wav")):
            (root / d / f"{i}{e}").write_bytes((flickr / d / f"{i}{e}").read_bytes())
    boxes = {"1001": [[-0.5, 0.1, 0.6, 1.4]], "1003": [[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]]}
    (root / "vggss.json").write_text(
        json.dumps([{"file": k, "class": "x", "bbox": v} for k, v in boxes.items()])
    )
    res = evaluate_benchmark_localization(root, avol_run, dataset="vggss", device="cpu")
    assert res["n"] == 2 and res["failed"] == [] and "ezvsl" in res["published"]
    gts = [union_map([tuple(vggss_coordinate(v) for v in b) for b in bs]) for bs in boxes.values()]
    want = np.mean([g.sum() / 224**2 for g in gts])
    assert res["baselines"]["whole_image"]["mean_ciou"] == pytest.approx(want, abs=1e-4)


def test_demo_options_are_refused_with_a_dataset(flickr, avol_run, capsys):
    args = ["eval", "localization", str(flickr), "--checkpoint", str(avol_run)]
    assert main(args + ["--dataset", "flickr", "--times", "3", "--compare", "x"]) == 2
    assert "--times, --compare" in capsys.readouterr().err
    assert main(args + ["--gt-path", str(flickr / "Annotations")]) == 2
    assert "need --dataset" in capsys.readouterr().err
