"""Tests of looklisten.media.video on real encoded files (written by tests/media.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from media import (
    CLICK_AMP,
    CLICK_AT,
    TONE_AMP,
    TONE_HZ,
    TONE_OFF,
    TONE_ON,
    Clip,
    decode_index,
    make_clip,
    truncate,
)

from looklisten.media.video import (
    MediaError,
    MediaInfo,
    MediaReader,
    check_usable,
    probe,
    read_audio,
    read_frame,
    read_frames,
    write_video,
)

# name -> (format, extension, make_clip keywords, native decoded sample rate)
GOOD = {
    "h264-aac-48k-stereo": (
        "h264-aac",
        ".mp4",
        dict(duration=3.0, fps=25, sample_rate=48000, channels=2, gop=12),
        48000,
    ),
    "vp9-opus-16k-mono": (
        "vp9-opus",
        ".webm",
        dict(duration=2.0, fps=30, sample_rate=16000, channels=1, gop=15),
        48000,  # Opus always decodes at 48 kHz
    ),
    "mjpeg-pcm-22k-5.1": (
        "mjpeg-pcm",
        ".avi",
        dict(duration=2.0, fps=15, sample_rate=22050, channels=6),
        22050,
    ),
    "mpeg4-mp3-44k-stereo": (
        "mpeg4-mp3",
        ".mp4",
        dict(duration=2.0, fps=24, sample_rate=44100, channels=2, gop=12),
        44100,
    ),
    "h264-aac-8k-mono": (
        "h264-aac",
        ".mp4",
        dict(duration=2.0, fps=25, sample_rate=8000, channels=1, size=(96, 64)),
        8000,
    ),
    "h264-aac-44k-5.1": (
        "h264-aac",
        ".mp4",
        dict(duration=2.0, fps=25, sample_rate=44100, channels=6),
        44100,
    ),
    "vfr-h264-aac-16k-mono": (
        "h264-aac",
        ".mp4",
        dict(duration=2.0, fps=25, sample_rate=16000, channels=1, gop=8),
        16000,
    ),
}
AUDIO_ONLY = {
    "aac-m4a": ("aac-m4a", ".m4a", dict(sample_rate=44100, channels=2), 44100),
    "opus-ogg": ("opus-ogg", ".ogg", dict(sample_rate=48000, channels=2), 48000),
    "vorbis-ogg": ("vorbis-ogg", ".ogg", dict(sample_rate=22050, channels=2), 22050),
}
LOSSY_AMPLITUDE = {"mpeg4-mp3-44k-stereo": 0.1, "h264-aac-8k-mono": 0.05}


def vfr_times(duration: float = 2.0) -> np.ndarray:
    """Uneven frame times in whole milliseconds (20-120 ms apart)."""
    rng = np.random.default_rng(7)
    steps = rng.integers(20, 121, size=200) / 1000.0
    times = np.concatenate([[0.0], np.cumsum(steps)])
    return times[times < duration]


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Factory of test clips, each written once per session on first use."""
    root = tmp_path_factory.mktemp("media")
    cache: dict[str, Clip] = {}

    def get(name: str) -> Clip:
        if name not in cache:
            fmt, ext, kw, _ = {**GOOD, **AUDIO_ONLY}[name]
            kw = dict(kw)
            if name.startswith("vfr"):
                kw["times"] = vfr_times(kw["duration"])
            clip = make_clip(root / f"{name}{ext}", fmt, **kw)
            if ext == ".webm":  # Matroska stores times in whole milliseconds
                clip.frame_times = np.round(clip.frame_times * 1000) / 1000
            cache[name] = clip
        return cache[name]

    return get


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, media):
    """Unusable inputs: name -> (path, expected reason prefix)."""
    root = tmp_path_factory.mktemp("bad")
    files = {}
    files["no-audio"] = (
        make_clip(root / "noaudio.mp4", "h264-aac", audio=False).path,
        "no audio stream",
    )
    files["audio-only-m4a"] = (media("aac-m4a").path, "no video stream")
    files["audio-only-ogg"] = (media("opus-ogg").path, "no video stream")
    files["short"] = (
        make_clip(root / "short.mp4", "h264-aac", duration=0.4).path,
        "shorter than 1.0 s (0.40 s)",
    )
    files["silent"] = (make_clip(root / "silent.mp4", "h264-aac", silent=True).path, "silent audio")
    for fmt, ext in (("h264-aac", ".mp4"), ("vp9-opus", ".webm"), ("mjpeg-pcm", ".avi")):
        good = make_clip(root / f"full-{fmt}{ext}", fmt, duration=3.0).path
        files[f"truncated-{ext[1:]}"] = (
            truncate(good, root / f"truncated-{fmt}{ext}"),
            "truncated or corrupt",
        )
    text = root / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 40)
    files["text"] = (text, "not a media file")
    rand = root / "noise.mp4"
    rand.write_bytes(np.random.default_rng(0).bytes(40_000))
    files["random-bytes"] = (rand, "not a media file")
    empty = root / "empty.webm"
    empty.write_bytes(b"")
    files["empty"] = (empty, "not a media file")
    files["missing"] = (root / "missing.mp4", "file not found")
    return files


def native_rate(name: str) -> int:
    return {**GOOD, **AUDIO_ONLY}[name][3]


# --------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD)
def test_probe(media, name):
    clip = media(name)
    info = probe(clip.path)
    assert isinstance(info, MediaInfo)
    assert info.path == str(clip.path)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == clip.size
    assert abs(info.num_frames - clip.num_frames) <= 1
    if name.startswith("vfr"):
        assert info.fps == pytest.approx(clip.num_frames / clip.duration, rel=0.1)
    else:
        assert info.fps == pytest.approx(clip.fps, rel=1e-3)
    assert info.sample_rate == native_rate(name)
    assert info.channels == clip.channels
    assert info.duration == pytest.approx(clip.duration, abs=0.05)
    assert info.video_start == pytest.approx(0.0, abs=1e-3)
    assert info.start + info.duration == pytest.approx(info.end)


@pytest.mark.parametrize("name", AUDIO_ONLY)
def test_probe_audio_only(media, name):
    info = probe(media(name).path)
    assert not info.has_video and info.has_audio
    assert (info.fps, info.width, info.height, info.num_frames) == (0.0, 0, 0, 0)
    assert info.sample_rate == native_rate(name)
    assert info.channels == 2
    assert info.duration == pytest.approx(2.0, abs=0.05)


# --------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------


def sample_times(clip: Clip) -> list[float]:
    """Times on, inside and between frames, outside the clip, in a shuffled order."""
    ft = clip.frame_times
    picks = np.unique(np.linspace(0, len(ft) - 1, 9).round().astype(int))
    ts = [-0.5, 0.0, clip.duration + 1.0]
    for i in picks:
        nxt = ft[i + 1] if i + 1 < len(ft) else ft[i] + 0.04
        ts += [ft[i], ft[i] + 0.3 * (nxt - ft[i]), nxt - 0.002]
    rng = np.random.default_rng(len(ft))
    return list(rng.permutation(ts))


@pytest.mark.parametrize("name", GOOD)
def test_read_frame_picks_displayed_frame(media, name):
    clip = media(name)
    w, h = clip.size
    with MediaReader(clip.path) as reader:
        for t in sample_times(clip):
            img = reader.read_frame(t)
            assert img.shape == (h, w, 3) and img.dtype == np.uint8
            assert decode_index(img) == clip.frame_at(t), f"t={t:.4f}"
    # The module-level function (one open per call) agrees.
    t = clip.frame_times[len(clip.frame_times) // 2]
    assert decode_index(read_frame(clip.path, t)) == clip.frame_at(t)


@pytest.mark.parametrize("name", GOOD)
def test_read_frames_consecutive(media, name):
    clip = media(name)
    i = clip.num_frames // 3
    t = clip.frame_times[i] + 0.001
    frames = read_frames(clip.path, t, 6)
    assert frames.shape == (6, clip.size[1], clip.size[0], 3) and frames.dtype == np.uint8
    assert [decode_index(f) for f in frames] == list(range(i, i + 6))


def test_read_frames_past_end_repeats_last(media):
    clip = media("h264-aac-48k-stereo")
    last = clip.num_frames - 1
    frames = read_frames(clip.path, clip.frame_times[last - 1], 4)
    assert [decode_index(f) for f in frames] == [last - 1, last, last, last]
    with pytest.raises(ValueError):
        read_frames(clip.path, 0.0, 0)


@pytest.mark.parametrize(
    ("name", "size", "shape"),
    [
        ("h264-aac-48k-stereo", 32, (32, 43)),  # 64x48 -> shorter side 32
        ("h264-aac-8k-mono", 48, (48, 72)),  # 96x64
        ("mjpeg-pcm-22k-5.1", 96, (96, 128)),  # upscaling
    ],
)
def test_read_frame_resizes_shorter_side(media, name, size, shape):
    clip = media(name)
    i = clip.num_frames // 2
    img = read_frame(clip.path, clip.frame_times[i], size=size)
    assert img.shape == (*shape, 3)
    assert decode_index(img) == i
    with MediaReader(clip.path) as reader:
        frames = reader.read_frames(clip.frame_times[i], 3, size=size)
    assert frames.shape == (3, *shape, 3)
    assert [decode_index(f) for f in frames] == [i, i + 1, i + 2]


def test_threaded_decoding_picks_the_same_frames(media):
    clip = media("h264-aac-48k-stereo")  # B-frames, short GOP
    with MediaReader(clip.path, threads=0) as reader:
        for t in sample_times(clip):
            assert decode_index(reader.read_frame(t)) == clip.frame_at(t), f"t={t:.4f}"
        frames = reader.read_frames(clip.frame_times[20], 8)
    assert [decode_index(f) for f in frames] == list(range(20, 28))


def test_variable_frame_rate_uses_pts(media):
    clip = media("vfr-h264-aac-16k-mono")
    gaps = np.diff(clip.frame_times)
    assert gaps.min() < 0.6 * gaps.max()  # really variable
    with MediaReader(clip.path) as reader:
        for i in range(0, clip.num_frames - 1, 3):
            a, b = clip.frame_times[i], clip.frame_times[i + 1]
            assert decode_index(reader.read_frame((a + b) / 2)) == i
            assert decode_index(reader.read_frame(b - 0.001)) == i


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory):
    """20 s, 500 frames, a keyframe every 10 frames."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    return make_clip(path, "h264-aac", duration=20.0, fps=25, sample_rate=16000, channels=1, gop=10)


def test_read_frame_seeks_instead_of_decoding_everything(long_clip):
    with MediaReader(long_clip.path) as reader:
        i = long_clip.num_frames - 7
        assert decode_index(reader.read_frame(long_clip.frame_times[i])) == i
        # From the keyframe before frame 493 (490), plus the decoder's look-ahead.
        assert reader.stats["video_frames"] <= 30 < long_clip.num_frames
        assert reader.stats["video_seeks"] == 1


def test_read_audio_seeks_instead_of_decoding_everything(long_clip):
    with MediaReader(long_clip.path) as reader:
        x = reader.read_audio(18.0, 19.0, 16000)
        assert len(x) == 16000
        # 1 s of AAC at 16 kHz is ~16 packets of 1024 samples; the file has ~313.
        assert reader.stats["audio_frames"] <= 40


def test_forward_reads_continue_without_seeking(long_clip):
    ft = long_clip.frame_times
    with MediaReader(long_clip.path) as reader:
        reader.read_frame(ft[100])
        seeks = reader.stats["video_seeks"]
        for i in (101, 104, 110, 120):  # forward, within 1 s: keep decoding
            assert decode_index(reader.read_frame(ft[i])) == i
        assert decode_index(reader.read_frames(ft[121], 3)[-1]) == 123
        assert decode_index(reader.read_frame(ft[124])) == 124
        assert reader.stats["video_seeks"] == seeks
        assert decode_index(reader.read_frame(ft[50])) == 50  # backwards: seek
        assert decode_index(reader.read_frame(ft[300])) == 300  # far ahead: seek
        assert reader.stats["video_seeks"] == seeks + 2


def test_interleaved_audio_and_video_reads(media):
    clip = media("h264-aac-48k-stereo")
    with MediaReader(clip.path) as reader:
        for i in (10, 11, 40, 12, 60):
            t = clip.frame_times[i]
            assert decode_index(reader.read_frame(t)) == i
            assert len(reader.read_audio(t, t + 0.5, 16000)) == 8000


# --------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------

OUT_RATES = [None, 8000, 16000, 22050, 44100, 48000]


def _tone_window(k: int = 0) -> tuple[float, float]:
    return k + TONE_ON + 0.05, k + TONE_OFF - 0.05


@pytest.mark.parametrize("name", [*GOOD, *AUDIO_ONLY])
def test_read_audio_click_placement(media, name):
    """The click at time c is at index (c - t0) * sr, for any t0 and output rate."""
    clip = media(name)
    with MediaReader(clip.path) as reader:
        for sr in OUT_RATES:
            rate = sr or native_rate(name)
            for c in clip.click_times():
                for lead in (0.1, 0.2371):
                    t0 = c - lead
                    x = reader.read_audio(t0, t0 + 0.3, sr)
                    assert x.dtype == np.float32 and x.shape == (round(0.3 * rate),)
                    peak = int(np.argmax(np.abs(x)))
                    err = peak / rate - lead
                    assert abs(err) <= 1e-3, f"sr={sr} click={c} error {err * 1e3:.2f} ms"
                    assert np.abs(x[peak]) > 0.1 * CLICK_AMP  # (low-passed at 8 kHz)


@pytest.mark.parametrize("name", [*GOOD, *AUDIO_ONLY])
@pytest.mark.parametrize("sr", [None, 16000, 44100])
def test_read_audio_exact_length(media, name, sr):
    clip = media(name)
    rate = sr or native_rate(name)
    with MediaReader(clip.path) as reader:
        for t0, t1 in [(0.0, 1.0), (0.1234, 0.9871), (0.5, 0.5 + 1 / 3), (1.0, 1.9999)]:
            assert reader.read_audio(t0, t1, sr).shape == (round((t1 - t0) * rate),)
        full = reader.read_audio(0.0, None, sr)
        tail = reader.read_audio(1.2, None, sr)
    # t1=None reads to the end of the audio. The end is known to the sample,
    # except in WebM (1 ms timestamps) and FFmpeg's Vorbis encoder (padding).
    tol = {"vp9-opus-16k-mono": 0.001, "vorbis-ogg": 0.005}.get(name, 0.0)
    assert abs(len(full) - round(clip.duration * rate)) <= round(tol * rate)
    assert abs(len(tail) - round((clip.duration - 1.2) * rate)) <= round(tol * rate)
    # A window read after a seek matches the same samples decoded from the start.
    i, n, m = round(1.2 * rate), rate // 2, round(tol * rate)
    err = min(
        np.abs(tail[m + s : m + s + n] - full[i + m : i + m + n]).max() for s in range(-m, m + 1)
    )
    assert err <= (2e-3 if sr is None else 0.02)


@pytest.mark.parametrize("name", [*GOOD, *AUDIO_ONLY])
def test_read_audio_amplitude_and_downmix(media, name):
    """A tone of amplitude A on every channel stays at amplitude A in mono."""
    clip = media(name)
    rate = native_rate(name)
    expected = TONE_AMP / np.sqrt(2)
    if name == "h264-aac-44k-5.1":
        # FFmpeg's AAC encoder low-passes the LFE channel: the 440 Hz tone
        # survives on 5 of the 6 channels.
        expected *= 5 / 6
    tol = LOSSY_AMPLITUDE.get(name, 0.03)
    for k in range(int(clip.duration)):
        t0, t1 = _tone_window(k)
        x = read_audio(clip.path, t0, t1)
        rms = float(np.sqrt(np.mean(x**2)))
        assert rms == pytest.approx(expected, rel=tol)
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        assert np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)] == pytest.approx(
            TONE_HZ, abs=5
        )


def test_pcm_downmix_is_the_channel_mean(media):
    clip = media("mjpeg-pcm-22k-5.1")  # lossless: exact values
    t0, t1 = _tone_window(1)
    x = read_audio(clip.path, t0, t1)
    t = t0 + np.arange(len(x)) / 22050
    np.testing.assert_allclose(x, TONE_AMP * np.sin(2 * np.pi * TONE_HZ * t), atol=2e-4)


def test_downmix_averages_different_channels(tmp_path):
    """Left = tone, right = silence: the mono signal is half the tone (PCM, exact)."""
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    frames = np.zeros((10, 48, 64, 3), np.uint8)
    path = write_video(
        tmp_path / "lr.avi",
        frames,
        10,
        np.stack([tone, np.zeros_like(tone)]),
        sr,
        vcodec="mjpeg",
        acodec="pcm_s16le",
        pix_fmt="yuvj420p",
    )
    x = read_audio(path, 0.25, 0.75)
    np.testing.assert_allclose(x, tone[4000:12000] / 2, atol=1e-4)


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_resampling_keeps_frequency_and_amplitude(media, sr):
    clip = media("h264-aac-48k-stereo")
    t0, t1 = _tone_window(2)
    x = read_audio(clip.path, t0, t1, sr)
    assert x.shape == (round((t1 - t0) * sr),)
    assert float(np.sqrt(np.mean(x**2))) == pytest.approx(TONE_AMP / np.sqrt(2), rel=0.03)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    assert np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)] == pytest.approx(TONE_HZ, abs=5)


def test_read_audio_zero_fills_outside_the_stream(media):
    clip = media("h264-aac-48k-stereo")
    sr = 16000
    with MediaReader(clip.path) as reader:
        inside = reader.read_audio(0.0, 0.3, sr)
        before = reader.read_audio(-0.2, 0.3, sr)
        assert before.shape == (8000,)
        assert np.all(before[:3200] == 0)
        np.testing.assert_allclose(before[3200:], inside, atol=1e-4)
        after = reader.read_audio(clip.duration - 0.25, clip.duration + 0.5, sr)
        assert after.shape == (12000,)
        assert np.abs(after[: 4000 - 10]).max() > 0.1  # the click at 2.75 s
        assert np.all(after[4000:] == 0)
        for t0, t1 in [(clip.duration + 1, clip.duration + 2), (-3.0, -1.0)]:
            with pytest.raises(MediaError, match="outside the audio stream"):
                reader.read_audio(t0, t1, sr)
        with pytest.raises(MediaError, match="outside the audio stream"):
            reader.read_audio(clip.duration + 1, None, sr)
        assert reader.read_audio(1.0, 1.0, sr).shape == (0,)
        with pytest.raises(ValueError):
            reader.read_audio(1.0, 0.5)


def test_read_audio_whole_audio_only_file(media):
    """The demo-data path: a whole .ogg at a training rate."""
    clip = media("vorbis-ogg")
    x = read_audio(clip.path, 0, None, 16000)
    assert x.dtype == np.float32 and abs(len(x) - 32000) <= 80
    assert np.argmax(np.abs(x[8000:16000])) + 8000 == pytest.approx(0.75 * 16000, abs=16)


# --------------------------------------------------------------------------
# check_usable and errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD)
def test_check_usable_accepts_good_files(media, name):
    info = check_usable(media(name).path)
    assert info.has_video and info.has_audio and info.duration >= 1.0


BAD = [
    "no-audio",
    "audio-only-m4a",
    "audio-only-ogg",
    "short",
    "silent",
    "truncated-mp4",
    "truncated-webm",
    "truncated-avi",
    "text",
    "random-bytes",
    "empty",
    "missing",
]


@pytest.mark.parametrize("name", BAD)
def test_check_usable_rejects_with_reason(bad_files, name):
    path, reason = bad_files[name]
    with pytest.raises(MediaError) as info:
        check_usable(path)
    err = info.value
    assert err.path == str(path)
    assert err.reason.startswith(reason), err.reason
    assert str(err) == f"{path}: {err.reason}"
    assert path.name in str(err)
    assert "\n" not in str(err)


@pytest.mark.parametrize("name", ["text", "random-bytes", "empty", "missing", "truncated-mp4"])
def test_every_reader_raises_media_error_for_unreadable_files(bad_files, name):
    path, reason = bad_files[name]
    calls = [
        lambda: probe(path),
        lambda: read_frame(path, 0.0),
        lambda: read_frames(path, 0.0, 2),
        lambda: read_audio(path, 0.0, 1.0, 16000),
        lambda: MediaReader(path),
    ]
    for call in calls:
        with pytest.raises(MediaError, match=reason) as info:
            call()
        assert info.value.__cause__ is None  # no chained FFmpeg traceback


def test_missing_stream_errors(bad_files):
    path, _ = bad_files["no-audio"]
    with pytest.raises(MediaError, match="no audio stream"):
        read_audio(path, 0.0, 1.0)
    assert read_frame(path, 0.5).shape == (48, 64, 3)
    path, _ = bad_files["audio-only-m4a"]
    with pytest.raises(MediaError, match="no video stream"):
        read_frame(path, 0.5)
    with pytest.raises(MediaError, match="no video stream"):
        read_frames(path, 0.5, 2)


def test_media_error_pickles():
    err = MediaError("/data/clip.mp4", "silent audio")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, MediaError)
    assert (back.path, back.reason, str(back)) == (err.path, err.reason, str(err))


def test_probe_accepts_info_and_reader_is_reusable(media):
    clip = media("h264-aac-48k-stereo")
    info = probe(clip.path)
    with MediaReader(clip.path, info=info) as reader:
        assert reader.info is info
        a = reader.read_audio(1.0, 1.5, 16000)
    b = read_audio(clip.path, 1.0, 1.5, 16000, info=info)
    np.testing.assert_array_equal(a, b)
    assert decode_index(read_frame(clip.path, 1.0, info=info)) == 25
    reader.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        reader.read_frame(1.0)


def test_reader_pickles_by_reopening(media):
    clip = media("h264-aac-48k-stereo")
    with MediaReader(clip.path) as reader:
        reader.read_frame(1.0)
        clone = pickle.loads(pickle.dumps(reader))
    with clone:
        assert clone.info == reader.info
        assert decode_index(clone.read_frame(1.0)) == 25


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 48, 64), np.uint8), 25)
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", None, 25)
    with pytest.raises(ValueError):
        write_video(
            tmp_path / "x.mp4", np.zeros((2, 48, 64, 3), np.uint8), 25, times=np.array([0.0, 0.0])
        )


@pytest.mark.parametrize(
    "fmt, ext",
    [
        ("vp9-opus", ".webm"),
        ("vp9-opus", ".mkv"),
        ("h264-aac", ".mkv"),
        ("h264-aac-mov", ".mov"),
        ("h264-aac", ".mp4"),
    ],
)
def test_audio_windows_are_the_whole_track_decode_sample_for_sample(fmt, ext, tmp_path):
    """Matroska / WebM round times to 1 ms: a window read after a seek still holds exactly
    the samples of the whole-track decode, and both sit where the signal was written."""
    sr = 48000
    clip = make_clip(tmp_path / f"a{ext}", fmt, duration=6.0, sample_rate=sr, channels=1)
    for rate in (sr, 16000):
        with MediaReader(clip.path) as reader:
            whole = reader.read_audio(0.0, None, rate)
            for t0 in (1.0, 2.3, 3.71, 4.5):
                w = reader.read_audio(t0, t0 + 1.0, rate)
                i = round(t0 * rate)
                # AAC decodes a frame a little differently after a seek (its overlap
                # state); a shift by one sample would differ by ~0.03 on the tone
                tol = 1e-6 if "opus" in fmt else 1e-3
                np.testing.assert_allclose(w, whole[i : i + len(w)], rtol=0, atol=tol)
            assert reader.stats["audio_seeks"] >= 4  # windows were read after seeks
        if rate == sr:  # the click of each second, where it was written (lossy codecs)
            for k in (1, 2, 3, 4):
                c = int(round((k + CLICK_AT) * sr))
                assert abs(int(np.argmax(np.abs(whole[c - 200 : c + 200]))) - 200) <= 2
