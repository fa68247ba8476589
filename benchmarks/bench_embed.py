"""Embedding throughput on this machine: audio seconds and images per second, per preset,
with torchopenl3's audio network beside ours in the same run.

For each preset (random weights; AVE-Net head, whose trunks are those of L3-Net):

* ``audio s/s``: seconds of audio embedded per wall-clock second by
  :func:`looklisten.tasks.embed.embed_audio` (the whole pipeline: windowing, batching,
  spectrogram, network) at ``--hop`` (default 0.1 s, OpenL3's default: 10
  windows per second of audio), and the windows per second that makes;
* ``images/s``: :func:`looklisten.tasks.embed.embed_image` on 256x256 uint8 images
  (resize, centre crop, normalise, network);
* ``net win/s``: the audio network alone (waveform batch -> embedding).

torchopenl3 (PyPI; OpenL3's audio network ported to PyTorch): its weights are
downloaded from GitHub at load time, which is impossible here, so its network
class ``torchopenl3.models.PytorchOpenl3`` is built directly with random
weights. Its module imports ``librosa`` only for the Hann window and the mel
filterbank matrix of its spectrogram layer, and ``torchopenl3.core`` (which
needs soundfile, resampy, julius) only for a weight loader; this script loads
``models.py`` from the installed package with small stand-ins for those
(numpy's Hann window; a mel matrix of the right shape from
:func:`looklisten.models.audio.mel_filterbank`), so the network that runs is the
package's own code. It is timed on the same 1 s, 48 kHz windows as our
``paper`` / ``ots`` audio networks (``mel128``, 512-d: torchopenl3's default),
alternating with ours so that load from other processes hits both alike; the
ratio ``ours / torchopenl3`` (>1: ours is faster) is of medians over the
repeats.

Install torchopenl3 without its dependencies (they are not needed here)::

    .venv/bin/pip install --no-deps torchopenl3==1.0.1

Usage::

    python benchmarks/bench_embed.py [--presets tiny,small,ots,paper] [--scale 1]
        [--repeats 3] [--hop 0.1] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from looklisten.core.config import get_config
from looklisten.models.network import create_model
from looklisten.tasks.embed import embed_audio, embed_image

# work per timed call: (audio seconds, images, network-only windows)
_WORK = {"tiny": (20, 64, 64), "small": (10, 32, 32), "ots": (2, 8, 16), "paper": (1, 4, 8)}


def _measure(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (this process, all its threads) of ``fn()``."""
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def load_torchopenl3_network(input_repr: str = "mel128", embedding_size: int = 512):
    """torchopenl3's ``PytorchOpenl3`` with random weights (see the module docstring)."""
    spec = importlib.util.find_spec("torchopenl3")
    if spec is None or not spec.submodule_search_locations:
        return None, "torchopenl3 is not installed (pip install --no-deps torchopenl3==1.0.1)"
    pkg_dir = Path(list(spec.submodule_search_locations)[0])
    from looklisten.models.audio import mel_filterbank

    def get_window(name, n, fftbins=True):
        assert name == "hann"
        return np.hanning(n + 1)[:-1] if fftbins else np.hanning(n)

    def mel(sr, n_fft, n_mels, fmin=0.0, fmax=None, htk=True, norm=1):
        return mel_filterbank(sr, n_fft, n_mels, fmin, fmax)  # shape (n_mels, 1 + n_fft // 2)

    saved = {k: sys.modules.get(k) for k in ("librosa", "torchopenl3", "torchopenl3.core")}
    librosa = types.ModuleType("librosa")
    librosa.filters = types.SimpleNamespace(get_window=get_window, mel=mel)
    pkg = types.ModuleType("torchopenl3")
    pkg.__path__ = [str(pkg_dir)]
    pkg.core = types.ModuleType("torchopenl3.core")
    sys.modules.update({"librosa": librosa, "torchopenl3": pkg, "torchopenl3.core": pkg.core})
    try:
        mspec = importlib.util.spec_from_file_location("torchopenl3.models", pkg_dir / "models.py")
        mod = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(mod)
        net = mod.PytorchOpenl3("music", input_repr, embedding_size).eval()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    from importlib.metadata import version

    return (
        net,
        f"torchopenl3 {version('torchopenl3')} PytorchOpenl3({input_repr}, {embedding_size})",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small,ots,paper")
    ap.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the work per call (default sizes: "
        "audio seconds / images / network windows per call: tiny 20/64/64, small 10/32/32, "
        "ots 2/8/16, paper 1/4/8)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hop", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, hop {args.hop} s, batch {args.batch_size}, "
        f"median of {args.repeats}"
    )
    tol3, tol3_name = load_torchopenl3_network()
    print(f"# baseline: {tol3_name}")
    rows = []
    for preset in args.presets.split(","):
        seconds, n_images, n_windows = (v * args.scale for v in _WORK.get(preset, (2, 8, 16)))
        n_images, n_windows = max(1, int(n_images)), max(1, int(n_windows))
        images = rng.integers(0, 256, (n_images, 256, 256, 3), dtype=np.uint8)
        cfg = get_config(preset, arch="ave")
        model = create_model(cfg).eval()
        sr = cfg.audio.sample_rate
        audio = (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32)
        n_win = len(np.arange(0, seconds + 1e-9, args.hop))  # center=True windows
        windows = torch.from_numpy(
            (0.1 * rng.standard_normal((n_windows, cfg.audio.clip_samples))).astype(np.float32)
        )

        def run_audio(audio=audio, sr=sr, model=model):
            embed_audio(model, audio, sr=sr, hop=args.hop, batch_size=args.batch_size)

        def run_images(images=images, model=model):
            embed_image(model, images, batch_size=args.batch_size)

        def run_net(m=model, w=windows):
            with torch.inference_mode():
                for s in range(0, len(w), args.batch_size):
                    m.embed_audio(w[s : s + args.batch_size])

        run_images()  # warm-up (allocator, oneDNN kernels)
        run_net()
        row = {"preset": preset}
        wall, cpu = _measure(run_audio, args.repeats)
        row["audio"] = (seconds / wall, seconds / cpu)
        row["windows"] = (n_win / wall, n_win / cpu)
        wall, cpu = _measure(run_images, args.repeats)
        row["images"] = (n_images / wall, n_images / cpu)
        ours, theirs = [], []
        run_tol3 = None
        if tol3 is not None and sr == 48000 and cfg.audio.clip_samples == 48000:

            def run_tol3(w=windows):
                with torch.inference_mode():
                    for s in range(0, len(w), args.batch_size):
                        tol3(w[s : s + args.batch_size, None, :])  # (B, 1, 48000)

            run_tol3()
        for _ in range(args.repeats):  # alternate ours / theirs on the same windows
            ours.append(_measure(run_net, 1))
            if run_tol3 is not None:
                theirs.append(_measure(run_tol3, 1))
        row["net"] = tuple(n_windows / statistics.median(x[i] for x in ours) for i in (0, 1))
        if theirs:
            row["tol3"] = tuple(n_windows / statistics.median(x[i] for x in theirs) for i in (0, 1))
        rows.append(row)
        print(f"# {preset} done", file=sys.stderr, flush=True)

    for i, title in enumerate(
        (
            "per wall-clock second (as measured; other processes share this machine)",
            "per CPU second of this process (robust to other load; with 1 thread, the "
            "rate on an idle core)",
        )
    ):
        print(f"\n{title}\n")
        print(
            f"| preset | audio s/s (hop {args.hop:g}) | windows/s | images/s | net windows/s "
            "| torchopenl3 windows/s | ours / torchopenl3 |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            tol = f"{r['tol3'][i]:.2f}" if "tol3" in r else "n/a"
            ratio = f"{r['net'][i] / r['tol3'][i]:.2f}" if "tol3" in r else "n/a"
            print(
                f"| {r['preset']} | {r['audio'][i]:.2f} | {r['windows'][i]:.1f} | "
                f"{r['images'][i]:.1f} | {r['net'][i]:.2f} | {tol} | {ratio} |"
            )


if __name__ == "__main__":
    main()
