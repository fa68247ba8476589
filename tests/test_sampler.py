"""The pair sampler: balance, provenance, the frame grid, reproducibility, and the shortcut probe."""

import numpy as np
import pytest
import torch

from looklisten.core.config import get_config
from looklisten.data.sampler import PairDataset, PairSampler
from looklisten.data.scan import VideoEntry, split_videos
from looklisten.evaluation.shortcut import probe_accuracy, timing_features


def entry(i, duration, fps, start=0.0):
    return VideoEntry(f"v{i}.mp4", duration, fps, start, 64, 48, 16000, 1, 0, 0)


VIDEOS = [
    entry(i, d, f)
    for i, (d, f) in enumerate(
        [(4.0, 25), (6.5, 30), (3.0, 12.5), (5.0, 24), (2.2, 15), (8.0, 29.97)]
    )
]


def draws(n, frame_grid=True, shift=0.0, seed=0):
    cfg = get_config(
        "tiny", **{"sampler.frame_grid": frame_grid, "sampler.max_shift_seconds": shift}
    )
    s = PairSampler(VIDEOS, cfg.sampler, cfg.audio)
    rng = np.random.default_rng(seed)
    return [s.sample(rng) for _ in range(n)], cfg


def on_grid(v, t):
    k = (t - v.video_start) * v.fps
    return abs(k - round(k)) < 1e-6


def test_balance_and_provenance():
    specs, cfg = draws(20000)
    labels = np.array([s.label for s in specs])
    assert abs(labels.mean() - 0.5) < 0.015
    for s in specs:
        if s.label:
            assert s.frame_video == s.audio_video
        else:
            assert s.frame_video != s.audio_video
    # negatives draw their frame video uniformly among the others
    neg_f = np.bincount([s.frame_video for s in specs if not s.label], minlength=len(VIDEOS))
    assert neg_f.min() > 0.8 * neg_f.mean()


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_every_window_on_its_own_frame_grid_and_inside_the_clip(shift):
    specs, cfg = draws(5000, shift=shift)
    half = cfg.audio.clip_seconds / 2
    for s in specs:
        a, f = VIDEOS[s.audio_video], VIDEOS[s.frame_video]
        assert on_grid(a, s.audio_center), s
        assert half - 1e-9 <= s.audio_center <= a.duration - half + 1e-9
        assert on_grid(f, s.frame_time) and 0 <= s.frame_index < f.num_frames
        if s.label:
            assert abs(s.frame_time - s.audio_center) <= shift + 1e-9
    if shift:
        offsets = [s.frame_time - s.audio_center for s in specs if s.label]
        assert max(offsets) > 0.8 and min(offsets) < -0.8


def _audio_only_features(specs):
    """Everything an audio-only classifier could use: which video, where, and the phase on the grid."""
    X = []
    for s in specs:
        v = VIDEOS[s.audio_video]
        X.append(
            [s.audio_video, *timing_features(s.audio_center, v.duration, v.fps, v.video_start)]
        )
    return np.array(X), np.array([s.label for s in specs])


def test_shortcut_probe_is_at_chance_with_the_fix_and_wins_without():
    specs, _ = draws(8000, frame_grid=True, seed=1)
    X, y = _audio_only_features(specs)
    acc = probe_accuracy(X, y)
    # 8000 balanced samples: chance 0.5 with std ~0.006; allow 4 sigma
    assert abs(acc - 0.5) < 0.025, acc
    specs, _ = draws(8000, frame_grid=False, seed=1)
    X, y = _audio_only_features(specs)
    acc_naive = probe_accuracy(X, y)
    assert acc_naive > 0.9, acc_naive  # the probe does find the shortcut when it exists


def test_image_side_is_label_free_too():
    specs, _ = draws(8000, seed=2)
    X = np.array(
        [
            [s.frame_video, s.frame_time, s.frame_time / VIDEOS[s.frame_video].duration]
            for s in specs
        ]
    )
    y = np.array([s.label for s in specs])
    acc = probe_accuracy(X, y)
    assert abs(acc - 0.5) < 0.025, acc


class FakeSource:
    """Encodes the pair into the arrays so a test can check what was decoded."""

    def __init__(self, cfg):
        self.vision_cfg = cfg.vision
        self.audio_cfg = cfg.audio

    def frame(self, vid, index, t):
        r = self.vision_cfg.resize
        arr = np.zeros((r, r + 8, 3), np.uint8)
        arr[..., 0] = vid
        arr[..., 1] = index % 256
        return arr

    def audio(self, vid, center):
        return np.full(self.audio_cfg.clip_samples, center, np.float32)


def test_pairs_are_reproducible_across_workers():
    cfg = get_config("tiny")
    s = PairSampler(VIDEOS, cfg.sampler, cfg.audio)
    ds = PairDataset(s, FakeSource(cfg), length=64, seed=3, train=True)

    def collect(workers):
        dl = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=workers)
        return torch.cat([b["label"] for b in dl]), torch.cat([b["audio"][:, 0] for b in dl])

    l0, a0 = collect(0)
    l2, a2 = collect(2)
    assert torch.equal(l0, l2) and torch.equal(a0, a2)
    ds.set_epoch(1)
    l1, a1 = collect(0)
    assert not torch.equal(a0, a1)
    # validation pairs are fixed and use the centre crop
    val = PairDataset(s, FakeSource(cfg), length=8, seed=3, train=False)
    assert torch.equal(val[5]["frame"], val[5]["frame"])
    assert val[0]["frame"].shape == (cfg.vision.resize, cfg.vision.resize, 3)


def test_split_is_by_video_reproducible_and_stable():
    vids = [entry(i, 3.0, 25) for i in range(40)]
    tr, va = split_videos(vids, 0.2, seed=0)
    assert not {v.path for v in tr} & {v.path for v in va}
    assert len(tr) + len(va) == 40 and 3 <= len(va) <= 14
    assert split_videos(vids, 0.2, seed=0) == (tr, va)
    assert split_videos(vids, 0.2, seed=1) != (tr, va)
    # adding videos does not move the old ones
    tr2, va2 = split_videos(vids + [entry(i, 3.0, 25) for i in range(40, 50)], 0.2, seed=0)
    assert {v.path for v in va} <= {v.path for v in va2}


def test_too_few_videos_is_a_clear_error():
    cfg = get_config("tiny")
    with pytest.raises(ValueError, match="at least two"):
        PairSampler(VIDEOS[:1], cfg.sampler, cfg.audio)
    with pytest.raises(ValueError, match="too short"):
        PairSampler([entry(0, 0.5, 25), entry(1, 3, 25)], cfg.sampler, cfg.audio)
