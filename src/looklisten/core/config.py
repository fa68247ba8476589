"""Configuration dataclasses and the preset registry.

Every number that shapes preprocessing, the networks, the pair sampler or the
optimiser lives here, once. A :class:`Config` is saved (as JSON) beside every
checkpoint, and every entry point (training, evaluation, embedding, search,
localisation) rebuilds its preprocessing from the saved config, so training and
inference cannot drift apart.

Presets
-------
``paper``  Look, Listen and Learn exactly: 224x224 frames, 48 kHz audio,
           257x199 log-spectrogram, VGG trunks 64-128-256-512, conv1 stride 1.
``ots``    Objects that Sound: as ``paper`` but conv1_1 has stride 2 and the
           spectrogram is padded to 257x200 frames.
``small``  ``ots`` with half the widths and smaller inputs (112 px, 24 kHz).
``tiny``   ``ots`` with a quarter of the widths and small inputs (64 px,
           16 kHz): for CPU demos and tests.

The smaller presets change sizes only (widths, resolutions, sample rates),
never the logic.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

ARCHS = ("l3", "ave", "avol")
#: Allowed values of the config's choice fields.
AUDIO_KINDS = ("spectrogram", "logmel")
OPTIMIZERS = ("adam", "sgd")
#: Training objectives: the papers' binary AVC loss on balanced pairs, the same
#: loss on every pair of a batch of positives ("avc-all", any head), or a
#: contrastive one over the batch (InfoNCE for AVE-Net, its multiple-instance form
#: for AVOL-Net).
OBJECTIVES = ("avc", "avc-all", "infonce", "mil")
#: The head each contrastive objective needs.
OBJECTIVE_ARCH = {"infonce": "ave", "mil": "avol"}
#: The objectives with a temperature (logits = cosine / tau).
TEMPERATURE_OBJECTIVES = ("infonce", "mil")
#: The contrastive temperature never goes below this (logits at most 100 x cosine).
MIN_TEMPERATURE = 0.01
SCHEDULES = ("step", "cosine")
RANK_DATA = ("all", "own")
DTYPES = ("float32", "float64")
#: What AVOL-Net sees of a frame: the whole frame, or the centre crop of training.
MAP_MODES = ("full", "crop")
#: Shards (looklisten.data.shards): videos per shard, JPEG quality of the frames.
DEFAULT_SHARD_SIZE = 64
DEFAULT_JPEG_QUALITY = 90


@dataclass(frozen=True)
class AudioConfig:
    """Audio frontend: 1 s of mono audio -> a one-channel log-spectrogram image.

    With the defaults (the L3 paper): 48 kHz, a 0.01 s Hann window (480
    samples, zero-padded to a 512-point FFT) with half overlap (hop 240), no
    padding: 257 frequency bins x 199 frames.
    """

    sample_rate: int = 48000
    clip_seconds: float = 1.0
    win_seconds: float = 0.01
    hop_seconds: float = 0.005
    n_fft: int = 512
    # Zero-pad (win - hop) / 2 samples on each side so that the number of frames
    # is clip_samples // hop (OtS: 200 frames instead of 199).
    pad: bool = False
    # "spectrogram": log power of the linear-frequency STFT (the papers);
    # "logmel": log power after a mel filterbank of n_mels bands.
    kind: str = "spectrogram"
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    log_eps: float = 1e-10
    # Training augmentation: random gain in [1 - g, 1 + g].
    gain_jitter: float = 0.1
    # Training augmentation, another voice per example (models.audio.random_voice):
    # speed (pitch and tempo) in [1 / (1 + s), 1 + s] and a random spectral envelope
    # of +-eq_jitter_db dB. 0: off (the papers).
    speed_jitter: float = 0.0
    eq_jitter_db: float = 0.0
    # ... and noise at an SNR of noise_snr_db to noise_snr_db + 20 dB, white to pink.
    noise_snr_db: float = 0.0

    def __post_init__(self) -> None:
        _check_fields(self)

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_seconds))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_seconds))

    @property
    def pad_samples(self) -> int:
        return (self.win_length - self.hop_length) // 2 if self.pad else 0

    @property
    def n_bins(self) -> int:
        return self.n_mels if self.kind == "logmel" else self.n_fft // 2 + 1

    @property
    def n_frames(self) -> int:
        n = self.clip_samples + 2 * self.pad_samples
        return (n - self.win_length) // self.hop_length + 1

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, frequency bins, time frames) of one spectrogram."""
        return (1, self.n_bins, self.n_frames)


@dataclass(frozen=True)
class VisionConfig:
    """Vision frontend: one RGB frame -> a normalised square crop.

    Frames are decoded and scaled so that the shorter side is ``resize``
    pixels; training takes a random ``image_size`` crop (plus flip and
    brightness / saturation jitter), evaluation the centre crop.
    """

    image_size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    hflip: bool = True
    brightness: float = 0.4
    saturation: float = 0.4
    # Training augmentation: the RGB channels in a random order per example
    # (inputs.prepare.random_channel_order), where colour says nothing about the class.
    channel_shuffle: bool = False
    # Random-resized-crop-free: the crop is a plain random crop of the resized frame.
    # AVE+MF (Objects that Sound): K consecutive frames centred on the pair's
    # frame (indices i - K // 2 ... i + (K - 1) // 2), one crop / flip / jitter for
    # all K; the vision trunk's convolutions are inflated to 3D (looklisten.models.motion).
    num_frames: int = 1
    # AVE+OF: the pair's RGB frame plus L TV-L1 optical-flow fields (2L channels,
    # (dx, dy) per field) between frames i - L // 2 ... i + L - L // 2, in a
    # second stream (looklisten.models.motion). 0: no flow stream. Flow is computed
    # once per clip on grey frames at ``resize`` (looklisten.inputs.flow), clipped to
    # +-flow_bound pixels and stored as uint8: q = 128 + round(127 * f / bound).
    flow_frames: int = 0
    flow_bound: float = 20.0
    # TV-L1 (OpenCV's DualTVL1OpticalFlow): pyramid scales, warps per scale,
    # outer and inner iterations (OpenCV's defaults: 5, 5, 10, 30).
    flow_scales: int = 5
    flow_warps: int = 5
    flow_outer_iterations: int = 10
    flow_inner_iterations: int = 30

    def __post_init__(self) -> None:
        _check_fields(self)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, S, S) of one frame: 3, or 3 + 2L with L flow fields (AVE+OF).

        AVE+MF takes (3, K, S, S) clips of K = ``num_frames`` such frames.
        """
        return (3 + 2 * self.flow_frames, self.image_size, self.image_size)


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes. ``arch`` picks the head: L3-Net, AVE-Net or AVOL-Net."""

    arch: str = "l3"
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    conv1_stride: int = 1
    # L3 fusion: concat(512, 512) -> fc 1024->fusion_dim + ReLU -> fc ->2.
    fusion_dim: int = 128
    # AVE / AVOL embedding size.
    embed_dim: int = 128
    # AVE+MF: temporal size of the 3D-inflated kernels (3x3 -> t x 3 x 3).
    temporal_kernel: int = 3
    # AVE+OF: blocks that the RGB and flow streams have each before they are
    # concatenated (3: fused at conv4_1's input, the 14x14 stage of ``ots``).
    flow_fusion_block: int = 3
    # DeepLab's atrous last stage in the vision trunk (stride-1 3x3 pool3,
    # block 4 dilated by 2): a 2x finer map per side (28x28 at 224 px for
    # ``ots``), same weights. Single-frame trunks only (not AVE+MF / AVE+OF).
    atrous: bool = False

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class SamplerConfig:
    """Audio-visual correspondence pair sampling (see looklisten.data.sampler)."""

    positive_fraction: float = 0.5
    # Centre every audio window, of positives and negatives alike, on a frame
    # time of its own video: closes the Objects-that-Sound shortcut.
    frame_grid: bool = True
    # L3's random misalignment of frame and audio, up to this many seconds
    # (both labels). 0 disables it. Offsets are whole frames when frame_grid.
    max_shift_seconds: float = 0.0
    val_fraction: float = 0.15
    split_seed: int = 0
    # Share of the training pairs that are null pairs (label 0): a frame with a
    # sound nothing on screen makes, silence or noise only (looklisten.data.sampler).
    # AVOL-Net's default is AVOL_NULL_FRACTION; 0 turns them off.
    null_fraction: float = 0.0

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"  # "adam" (the papers) or "sgd" (momentum 0.9)
    lr: float = 1e-4
    weight_decay: float = 1e-5
    # "step": lr *= lr_decay every lr_decay_epochs epochs (OtS: 0.94 / 16);
    # "cosine": from lr to 0 over the run (short CPU runs of the small presets).
    schedule: str = "step"
    lr_decay: float = 1.0
    lr_decay_epochs: int = 16
    batch_size: int = 256
    epoch_pairs: int = 100_000
    epochs: int = 100
    val_pairs: int = 2048
    num_workers: int = 2
    # Checkpoint every this many steps as well as at every epoch end (0: epoch ends only).
    save_every_steps: int = 0
    log_every_steps: int = 10
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    # torch.compile the model (CUDA: faster steps after a compile of a minute or so).
    compile: bool = False
    # Several processes (torchrun): "all": every rank samples its slice of each
    # global batch from all training videos (W processes train exactly like one;
    # every machine reads every shard). "own": shards (videos of a raw folder)
    # are dealt to ranks, shard s of the sorted list to rank s mod W; each rank
    # fetches, reads and samples only its own (negatives from its other videos),
    # for data sets larger than one machine's disk.
    rank_data: str = "all"
    # Warm start: a run (or checkpoint) whose matching weights initialise this
    # run's model (looklisten.models.checkpoint.init_weights), e.g. an AVOL-Net from an
    # AVE-Net's trunks. "" = random initialisation (the papers).
    init: str = ""
    # Parameter dtype: "float32", or "float64" for numerical checks (e.g. that
    # several processes train like one: float32 results depend on summation order).
    dtype: str = "float32"
    # "avc": the papers' binary correspondence loss on balanced pairs. "infonce"
    # (AVE-Net) / "mil" (AVOL-Net, EZ-VSL): training pairs are positives only and
    # the batch's other pairs are the negatives (looklisten.models.losses); the
    # head's AVC calibration is trained alongside on detached features, so the AVC
    # accuracy (balanced validation pairs, as for "avc") and AVOL's maps still work.
    objective: str = "avc"
    # Contrastive temperature tau (logits = cosine / tau): its initial value, learnt
    # (as log tau, kept >= MIN_TEMPERATURE) unless learn_temperature is false.
    temperature: float = 0.07
    learn_temperature: bool = True

    def __post_init__(self) -> None:
        _check_fields(self)

    @property
    def contrastive(self) -> bool:
        """Positives-only training pairs, the batch's other pairs the negatives
        (every objective but the papers' balanced ``avc``)."""
        return self.objective != "avc"

    @property
    def has_temperature(self) -> bool:
        """The objective scales cosines by a temperature (InfoNCE, MIL)."""
        return self.objective in TEMPERATURE_OBJECTIVES


@dataclass(frozen=True)
class Config:
    preset: str = "paper"
    audio: AudioConfig = field(default_factory=AudioConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # -- serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        if not isinstance(d, dict):
            raise ValueError(f"a config is a JSON object, got {type(d).__name__}")
        return _from_dict(cls, d).check()

    @classmethod
    def from_json(cls, s: str) -> Config:
        return cls.from_dict(json.loads(s))

    def with_overrides(self, **overrides: Any) -> Config:
        """Return a copy with dotted overrides, e.g. ``{"train.lr": 3e-4}``.

        Every field is checked (type, range, allowed values; see
        :meth:`check`): a bad value raises ``ValueError`` naming the field.
        """
        cfg = self
        for key, value in overrides.items():
            if not isinstance(key, str) or not all(key.split(".")):
                raise ValueError(f"a config field is SECTION.NAME, got {key!r}")
            try:
                cfg = _set_dotted(cfg, key.split("."), value)
            except KeyError:
                raise UnknownFieldError(key) from None
        return cfg.check()

    def check(self) -> Config:
        """Check the fields that depend on each other; return ``self``.

        Each field's own type and range are checked when it is set (every
        section's ``__post_init__``); this adds the rules between fields.
        :func:`get_config`, :meth:`with_overrides` and :meth:`from_dict` (a
        checkpoint's ``config.json``) call it, so a bad config fails before
        anything is read or written.
        """
        a, v, t = self.audio, self.vision, self.train
        need = OBJECTIVE_ARCH.get(t.objective, self.model.arch)
        rules = [
            (
                a.win_length <= a.n_fft,
                f"audio.win_seconds gives {a.win_length} samples, more than audio.n_fft={a.n_fft}",
            ),
            (a.hop_length >= 1, "audio.hop_seconds is shorter than one sample"),
            (a.n_frames >= 1, "audio.clip_seconds is shorter than one spectrogram window"),
            (
                a.fmax is None or a.fmin < a.fmax <= a.sample_rate / 2,
                f"audio.fmax must lie in (audio.fmin, sample_rate / 2] = ({a.fmin}, "
                f"{a.sample_rate / 2}], got {a.fmax}",
            ),
            (a.fmin < a.sample_rate / 2, "audio.fmin must be below sample_rate / 2"),
            (
                v.image_size <= v.resize,
                f"vision.image_size ({v.image_size}) must not exceed "
                f"vision.resize ({v.resize}): the crop is taken from the resized frame",
            ),
            (
                v.num_frames == 1 or v.flow_frames == 0,
                "vision.num_frames > 1 (AVE+MF) and vision.flow_frames > 0 (AVE+OF) exclude "
                "each other",
            ),
            (
                not self.model.atrous or (v.num_frames == 1 and v.flow_frames == 0),
                "model.atrous is for the single-frame vision trunk: AVE+MF "
                "(vision.num_frames > 1) and AVE+OF (vision.flow_frames > 0) have no map "
                "to refine",
            ),
            (
                need == self.model.arch,
                f"train.objective={t.objective!r} needs model.arch={need!r}, "
                f"got model.arch={self.model.arch!r}",
            ),
        ]
        for ok, reason in rules:
            if not ok:
                raise ValueError(f"invalid config: {reason}")
        return self


class UnknownFieldError(ValueError):
    """A config names a field this version of looklisten does not have.

    ``field`` is its dotted name (``"train.foo"``); the message suggests the
    closest known fields (``did you mean train.batch_size?``).
    """

    def __init__(self, field: str) -> None:
        import difflib

        self.field = field
        known = field_names()
        tail = field.rsplit(".", 1)[-1]
        # a known name in the wrong section first, then near spellings
        close = [k for k in known if k.rsplit(".", 1)[-1] == tail]
        close += difflib.get_close_matches(field, known, n=2, cutoff=0.8)
        close = list(dict.fromkeys(close))[:2]
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        super().__init__(
            f"unknown config field {field!r}{hint} ('looklisten config' lists every field)"
        )


def field_names() -> list[str]:
    """Every settable config field as its dotted name (``"train.batch_size"``), in order."""
    return ["preset"] + [
        f"{section}.{f.name}" for section, cls in _SUBCONFIGS.items() for f in fields(cls)
    ]


def flat_fields(cfg: Config) -> dict[str, Any]:
    """``cfg`` as {dotted field: value}, in :func:`field_names` order."""
    out: dict[str, Any] = {"preset": cfg.preset}
    for section in _SUBCONFIGS:
        sub = getattr(cfg, section)
        out.update({f"{section}.{f.name}": getattr(sub, f.name) for f in fields(sub)})
    return out


def _from_dict(cls, d: dict[str, Any]):
    kwargs = {}
    known = {f.name for f in fields(cls)}
    for name, value in d.items():
        if name not in known:
            raise UnknownFieldError(f"{_SECTIONS[cls]}.{name}" if cls in _SECTIONS else name)
        sub = _SUBCONFIGS.get(name) if cls is Config else None
        if sub is not None:
            if not isinstance(value, dict):
                raise ValueError(f"config section {name!r} must be an object, got {value!r}")
            kwargs[name] = _from_dict(sub, value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _set_dotted(obj, path: list[str], value: Any):
    name = path[0]
    if not is_dataclass(obj) or name not in {f.name for f in fields(obj)}:
        raise KeyError(name)  # with_overrides names the whole key
    if len(path) == 1:
        if name in _SUBCONFIGS and isinstance(obj, Config):
            raise ValueError(f"{name!r} is a config section; set one of its fields ({name}.X)")
        return replace(obj, **{name: value})
    return replace(obj, **{name: _set_dotted(getattr(obj, name), path[1:], value)})


_SUBCONFIGS = {
    "audio": AudioConfig,
    "vision": VisionConfig,
    "model": ModelConfig,
    "sampler": SamplerConfig,
    "train": TrainConfig,
}
_SECTIONS = {cls: name for name, cls in _SUBCONFIGS.items()}

# Each field's rule beyond its type: (description, test). Choice fields list
# their allowed values; fields without an entry accept any value of their type.
_pos = ("> 0", lambda x: x > 0)
_nonneg = (">= 0", lambda x: x >= 0)
_one = (">= 1", lambda x: x >= 1)
_unit = ("in [0, 1)", lambda x: 0 <= x < 1)
_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "audio.sample_rate": (">= 1000", lambda x: x >= 1000),
    "audio.clip_seconds": _pos,
    "audio.win_seconds": _pos,
    "audio.hop_seconds": _pos,
    "audio.n_fft": (">= 2", lambda x: x >= 2),
    "audio.n_mels": _one,
    "audio.fmin": _nonneg,
    "audio.fmax": ("> 0 or null", lambda x: x is None or x > 0),
    "audio.log_eps": _pos,
    "audio.gain_jitter": _unit,
    "audio.speed_jitter": _unit,
    "audio.eq_jitter_db": _nonneg,
    "audio.noise_snr_db": _nonneg,
    "vision.image_size": _one,
    "vision.resize": _one,
    "vision.std": ("> 0 each", lambda x: all(e > 0 for e in x)),
    "vision.brightness": _unit,
    "vision.saturation": _unit,
    "vision.num_frames": _one,
    "vision.flow_frames": _nonneg,
    "vision.flow_bound": _pos,
    "vision.flow_scales": _one,
    "vision.flow_warps": _one,
    "vision.flow_outer_iterations": _one,
    "vision.flow_inner_iterations": _one,
    "model.widths": (">= 1 each", lambda x: all(e >= 1 for e in x)),
    "model.conv1_stride": ("1 or 2", lambda x: x in (1, 2)),
    "model.fusion_dim": _one,
    "model.embed_dim": _one,
    "model.temporal_kernel": ("odd and >= 1", lambda x: x >= 1 and x % 2 == 1),
    "model.flow_fusion_block": ("1 to 4", lambda x: 1 <= x <= 4),
    "sampler.positive_fraction": ("in (0, 1)", lambda x: 0 < x < 1),
    "sampler.max_shift_seconds": _nonneg,
    "sampler.val_fraction": _unit,
    "sampler.null_fraction": _unit,
    "train.lr": _pos,
    "train.weight_decay": _nonneg,
    "train.lr_decay": ("in (0, 1]", lambda x: 0 < x <= 1),
    "train.lr_decay_epochs": _one,
    "train.batch_size": _one,
    "train.epoch_pairs": _one,
    "train.epochs": _one,
    "train.val_pairs": _nonneg,
    "train.num_workers": _nonneg,
    "train.save_every_steps": _nonneg,
    "train.log_every_steps": _one,
    "train.seed": _nonneg,
    "train.temperature": (f">= {MIN_TEMPERATURE}", lambda x: x >= MIN_TEMPERATURE),
    "sampler.split_seed": _nonneg,
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "audio.kind": AUDIO_KINDS,
    "model.arch": ARCHS,
    "train.optimizer": OPTIMIZERS,
    "train.objective": OBJECTIVES,
    "train.schedule": SCHEDULES,
    "train.rank_data": RANK_DATA,
    "train.dtype": DTYPES,
}


def _typed(value: Any, hint: Any, key: str) -> Any:
    """``value`` as the field's type (ints widen to float, lists to tuples), or ValueError."""

    def bad(what: str) -> ValueError:
        return ValueError(f"config field {key} must be {what}, got {value!r}")

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        if not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad(f"a list of {len(args)} values")
        return tuple(_typed(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, args)))
    if type(None) in args:  # X | None
        if value is None:
            return None
        (inner,) = [t for t in args if t is not type(None)]
        return _typed(value, inner, key)
    raise TypeError(f"no rule for the type of {key}: {hint!r}")  # a new field's type


def _check_fields(section) -> None:
    """Type-check, coerce and range-check every field of a config section."""
    name = _SECTIONS[type(section)]
    hints = typing.get_type_hints(type(section))
    for f in fields(section):
        key = f"{name}.{f.name}"
        value = _typed(getattr(section, f.name), hints[f.name], key)
        object.__setattr__(section, f.name, value)
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ValueError(
                f"config field {key} must be one of {', '.join(_CHOICES[key])}, got {value!r}"
            )
        if key in _RULES:
            what, ok = _RULES[key]
            if not ok(value):
                raise ValueError(f"config field {key} must be {what}, got {value!r}")


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

_PRESETS: dict[str, Callable[[], Config]] = {}
# Per-head overrides of a preset: {preset: {arch: {dotted field: value}}}.
_ARCH_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {}


def register_preset(name: str, arch_overrides: dict[str, dict[str, Any]] | None = None):
    """Decorator: register a zero-argument function returning a :class:`Config`.

    ``arch_overrides`` maps a head (``"avol"`` ...) to dotted overrides applied
    when the preset is built for that head, e.g. a larger input for AVOL-Net,
    whose localisation map needs frames several times the trunk's receptive field.
    """

    def deco(fn: Callable[[], Config]) -> Callable[[], Config]:
        if name in _PRESETS:
            raise ValueError(f"preset {name!r} registered twice")
        _PRESETS[name] = fn
        _ARCH_OVERRIDES[name] = dict(arch_overrides or {})
        return fn

    return deco


def arch_overrides(preset: str) -> dict[str, dict[str, Any]]:
    """The per-head overrides registered with a preset (see :func:`register_preset`)."""
    return _ARCH_OVERRIDES.get(preset, {})


def list_presets() -> list[str]:
    return sorted(_PRESETS)


#: ``get_config()``'s preset and head, and ``looklisten train``'s: the preset a laptop
#: CPU trains in minutes and a GPU in hours (``paper`` needs the papers' 16 GPUs).
DEFAULT_PRESET = "small"
DEFAULT_ARCH = "l3"
#: Each head's objective where it is not the papers' ``avc``: the best measured
#: (AVE-Net: InfoNCE gave about 5x the retrieval nDCG@30 of the AVC loss on the same
#: budget, docs/results/digits.md; AVOL-Net keeps the AVC loss, whose maps beat MIL's
#: on objects anywhere and on silence). The presets that reproduce a paper
#: (:data:`PAPER_PRESETS`) keep the papers' loss.
ARCH_OBJECTIVES = {"ave": "infonce"}
PAPER_PRESETS = ("paper", "ots", "ave-mf", "ave-of")

#: AVOL-Net's ``sampler.null_fraction``: the share of its training pairs whose sound
#: is silence or noise only (see looklisten.data.sampler; benchmarks/compare_negatives.py).
AVOL_NULL_FRACTION = 0.2


def get_config(preset: str = DEFAULT_PRESET, arch: str | None = None, **overrides: Any) -> Config:
    """Build a preset's config, optionally for another head and with overrides.

    An AVE-Net trains with ``train.objective="infonce"`` unless the preset is
    one of a paper's or the overrides set another (:data:`ARCH_OBJECTIVES`).

    Parameters
    ----------
    preset : str
        A registered preset name (see :func:`list_presets`); default
        :data:`DEFAULT_PRESET`, as ``looklisten train``.
    arch : {"l3", "ave", "avol"}, optional
        The head; defaults to the preset's (``l3`` for the size presets).
    **overrides
        Dotted field overrides, e.g. ``**{"train.batch_size": 32}``.
    """
    if preset not in _PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(list_presets())}")
    cfg = _PRESETS[preset]()
    if arch is not None:
        if arch not in ARCHS:
            raise ValueError(f"unknown model {arch!r}; known: {', '.join(ARCHS)}")
        # the head's default objective follows below
        cfg = cfg.with_overrides(**{"model.arch": arch, "train.objective": "avc"})
        if arch != "l3":
            # Objects that Sound's schedule: lr decayed by 6 % every 16 epochs.
            cfg = cfg.with_overrides(**{"train.lr_decay": 0.94})
    cfg = cfg.with_overrides(**arch_overrides(preset).get(cfg.model.arch, {}))
    objective = ARCH_OBJECTIVES.get(cfg.model.arch)
    if objective and preset not in PAPER_PRESETS and "train.objective" not in overrides:
        cfg = cfg.with_overrides(**{"train.objective": objective})
    cfg = cfg.with_overrides(**overrides)
    if cfg.model.arch == "avol" and "sampler.null_fraction" not in overrides:
        # AVOL-Net learns that silence and noise come from nothing on screen
        cfg = cfg.with_overrides(**{"sampler.null_fraction": AVOL_NULL_FRACTION})
    return cfg


@register_preset("paper")
def _paper() -> Config:
    # L3: 16 GPUs x 16 = batch 256; +-1 s misalignment is L3's augmentation.
    return Config(
        preset="paper",
        sampler=SamplerConfig(max_shift_seconds=1.0),
    )


@register_preset("ots")
def _ots() -> Config:
    return Config(
        preset="ots",
        audio=AudioConfig(pad=True),
        model=ModelConfig(conv1_stride=2),
        train=TrainConfig(batch_size=2048),
    )


@register_preset("small")
def _small() -> Config:
    return Config(
        preset="small",
        audio=AudioConfig(sample_rate=24000, n_fft=256, pad=True),
        vision=VisionConfig(image_size=112, resize=128),
        model=ModelConfig(conv1_stride=2, widths=(32, 64, 128, 256), fusion_dim=128),
        train=TrainConfig(batch_size=64, epoch_pairs=8192, epochs=30, val_pairs=1024),
    )


# tiny's vision trunk sees 133 px around each map location: at 64 px every
# location sees the whole frame and AVOL-Net cannot localise; at 128 px its
# 8x8 map can (measured in the issue-4 note).
@register_preset("tiny", arch_overrides={"avol": {"vision.image_size": 128, "vision.resize": 144}})
def _tiny() -> Config:
    return Config(
        preset="tiny",
        audio=AudioConfig(
            sample_rate=16000, win_seconds=0.016, hop_seconds=0.008, n_fft=256, pad=True
        ),
        vision=VisionConfig(image_size=64, resize=72),
        model=ModelConfig(conv1_stride=2, widths=(16, 32, 64, 128), fusion_dim=64, embed_dim=64),
        train=TrainConfig(
            batch_size=64, epoch_pairs=12800, epochs=15, val_pairs=1024, lr=1e-3, schedule="cosine"
        ),
    )


# Objects that Sound's motion variants, at each size: AVE-Net on a multi-frame
# vision trunk with 3D-inflated convolutions (AVE+MF) or on an RGB frame plus
# a stack of TV-L1 optical flow in a second stream fused at the 14x14 stage
# (AVE+OF). ``ave-mf`` / ``ave-of`` have the sizes of ``ots`` (the paper's
# network); ``small-ave-*`` and ``tiny-ave-*`` those of ``small`` and ``tiny``.
MOTION_NUM_FRAMES = 5  # AVE+MF frames per example ("several frames")
MOTION_FLOW_FRAMES = 10  # AVE+OF flow fields per example (the paper's 10)
# prefix -> (base preset, flow bound in pixels at its resize (TSN's 20 px at
# 256, scaled), other overrides). tiny's TV-L1 is cheaper (3 scales of 72 px,
# fewer iterations: about half the time, same flow on the demo's motion).
_MOTION_SIZES: dict[str, tuple[str, float, dict[str, Any]]] = {
    "": ("ots", 20.0, {}),
    "small-": ("small", 10.0, {}),
    "tiny-": (
        "tiny",
        6.0,
        {
            "vision.flow_scales": 3,
            "vision.flow_warps": 3,
            "vision.flow_outer_iterations": 5,
            "vision.flow_inner_iterations": 10,
        },
    ),
}


def _motion_preset(name: str, base: str, overrides: dict[str, Any]) -> None:
    def build() -> Config:
        return get_config(base, arch="ave", **overrides).with_overrides(preset=name)

    register_preset(name)(build)


for _prefix, (_base, _bound, _extra) in _MOTION_SIZES.items():
    # 5-D (B, 3, K, S, S) inputs: no channels-last (a 4-D memory format).
    _motion_preset(
        f"{_prefix}ave-mf",
        _base,
        {"vision.num_frames": MOTION_NUM_FRAMES, "train.channels_last": False},
    )
    _motion_preset(
        f"{_prefix}ave-of",
        _base,
        {"vision.flow_frames": MOTION_FLOW_FRAMES, "vision.flow_bound": _bound, **_extra},
    )
