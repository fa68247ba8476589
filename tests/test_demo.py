"""`looklisten demo` end to end on a few encoded clips: three runs, evaluations, overlays, summary."""

import json

import av
import pytest

from looklisten.cli.main import main

pytestmark = pytest.mark.slow


def test_demo_trains_three_models_evaluates_and_writes_overlays(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    data, out = tmp_path / "data", tmp_path / "out"
    argv = ["demo", "--data", data, "--out", out, "--videos", 14, "--epochs", 1, "--quiet"]
    argv += ["--test-videos", 4, "--digits-videos", 12]
    argv += ["--set", "train.batch_size=8", "--set", "train.epoch_pairs=16"]
    argv += ["--set", "train.val_pairs=16"]
    assert main([str(a) for a in argv]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "metrics.json").read_text())
    assert set(summary["runs"]) == {"l3", "ave", "avol"}
    for arch, s in summary["runs"].items():
        assert s["model"] == arch and s["steps"] == 2
        assert (out / arch / "checkpoint").exists()
    assert summary["val_avc_accuracy"] == summary["runs"]["l3"]["val_avc_accuracy"]
    # the AVOL run used the tiny preset's per-head input size
    cfg = json.loads((out / "avol" / "checkpoint" / "config.json").read_text())
    assert cfg["vision"]["image_size"] == 128
    # ... warm-started from the AVE-Net's trunks
    assert summary["runs"]["avol"]["init"] == str((out / "ave").resolve())
    # L3's linear probes (with baselines) and unit galleries, for the report
    for modality in ("audio",):  # the image probe is left to 'eval probe' (its time)
        probe = json.loads((out / "l3" / "eval" / f"probe_{modality}.json").read_text())
        assert {"random_weights", "handmade", "majority"} <= set(probe["baselines"])
        assert summary["probes"][modality]["model"] == probe["accuracy"]["mean"]
    assert (out / "l3" / "eval" / "units.json").is_file()
    # evaluations saved beside their runs, with baselines
    # ... measured on the test set: clips of another seed, none of them trained on
    test = tmp_path / "data-test"
    assert summary["test_data"] == str(test)
    assert len(list(test.glob("*.mp4"))) == 4
    assert (test / "annotations.jsonl").read_text() != (data / "annotations.jsonl").read_text()
    ret = json.loads((out / "ave" / "eval" / "retrieval.json").read_text())
    assert "random" in ret and "l3" in ret
    assert ret["data"] == str(test) and ret["items"]["videos"] == 4
    assert "minus_l3_cca" in ret["cross_modal_ndcg"]["im2aud"]
    loc = json.loads((out / "avol" / "eval" / "localization.json").read_text())
    assert {"centre_prior", "whole_image", "random_map"} <= set(loc["baselines"])
    assert loc["data"] == str(test) and loc["split"] == "all" and loc["clips"] == 4
    assert "retrieval nDCG@30 on" in printed
    # overlays: PNG frames and one video with its sound
    assert len(list((out / "overlays").glob("*.png"))) > 0
    with av.open(summary["overlay_video"]) as c:
        assert c.streams.video and c.streams.audio
    assert "held-out AVC accuracy" in printed and str(out / "metrics.json") in printed
    # the held-out-exemplar part: an AVE-Net (InfoNCE) trained on the digits' training
    # writers and voices, evaluated on others
    digits = summary["digits"]
    assert digits["test_data"] == str(tmp_path / "data-digits-test")
    anns = [json.loads(x) for x in (tmp_path / "data-digits-test" / "annotations.jsonl").open()]
    assert len(anns) == 4 and {a["split"] for a in anns} == {"test"}
    train_anns = [json.loads(x) for x in (tmp_path / "data-digits" / "annotations.jsonl").open()]
    assert len(train_anns) == 12 and all("voice_variants" in a for a in train_anns)
    cfg = json.loads((out / "digits" / "checkpoint" / "config.json").read_text())
    assert cfg["model"]["arch"] == "ave" and cfg["train"]["objective"] == "infonce"
    # ... each example with another voice, noise and colours, never mirrored
    assert cfg["audio"]["speed_jitter"] > 0 and cfg["audio"]["noise_snr_db"] > 0
    assert cfg["vision"]["channel_shuffle"] and not cfg["vision"]["hflip"]
    # ... its AVC accuracy on the test writers and voices at every epoch end, for the report
    curve = json.loads((out / "digits" / "eval" / "test_curve.json").read_text())
    assert curve["data"] == digits["test_data"] and [r["step"] for r in curve["rows"]] == [2]
    # an AVOL-Net from it, localising the spoken digit on the test writers and voices
    cfg = json.loads((out / "digits-avol" / "checkpoint" / "config.json").read_text())
    assert cfg["model"]["arch"] == "avol" and cfg["train"]["init"] == str(
        (out / "digits").resolve()
    )
    loc = json.loads((out / "digits-avol" / "eval" / "localization.json").read_text())
    assert loc["data"] == digits["test_data"]
    assert (
        digits["localization"]["avol"]["two_object_accuracy"] == loc["avol"]["two_object_accuracy"]
    )
    assert "which of two digits" in printed
    avc = json.loads((out / "digits" / "eval" / "avc.json").read_text())
    assert avc["data"] == digits["test_data"] and avc["pairs"] == 2000
    assert digits["held_out_avc"]["accuracy"] == avc["accuracy"]
    assert set(digits["held_out_retrieval"]) == {"im2aud", "aud2im"}
    assert "held-out exemplars (digits" in printed
    # where the time went
    assert {"train l3", "train digits", "eval retrieval", "report"} <= set(summary["seconds"])
    assert "minutes per phase: " in printed and "train l3 " in printed
    # every network on the same fixed pairs of the test set
    for arch in ("l3", "ave", "avol"):
        avc = json.loads((out / arch / "eval" / "avc.json").read_text())
        assert avc["data"] == str(test) and avc["pairs"] == 1024
        assert summary["runs"][arch]["test_avc"]["accuracy"] == avc["accuracy"]
    assert "on the test set" in printed
    # the training clips mix both layouts; L3 and AVOL train on every pair of each batch
    layouts = {json.loads(x).get("layout", "train") for x in (data / "annotations.jsonl").open()}
    assert layouts == {"train", "anywhere"}
    for arch, objective in (("l3", "avc-all"), ("ave", "infonce"), ("avol", "avc-all")):
        cfg = json.loads((out / arch / "checkpoint" / "config.json").read_text())
        assert cfg["train"]["objective"] == objective and cfg["vision"]["image_size"] == 128
    html = (out / "report.html").read_text()
    assert summary["report"] == str(out / "report.html") and "AVOL-Net" in html and "<audio" in html
    # the digits' examples and overlays come from the test writers and voices
    assert "data-digits-test, the clips of RUN/eval/retrieval.json" in html
    assert "data-digits-test, the clips of RUN/eval/localization.json" in html
    assert "(RUN/eval/test_curve.json)" in html

    # a second run reuses the finished runs (no retraining) and redoes the rest
    mtime = (out / "l3" / "checkpoint").stat().st_mtime_ns
    assert main([str(a) for a in argv]) == 0
    assert "reusing" in capsys.readouterr().out
    assert (out / "l3" / "checkpoint").stat().st_mtime_ns == mtime
