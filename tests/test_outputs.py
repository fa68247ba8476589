"""Files the project writes get the same permissions: 0666 less the user's umask."""

import os
import stat

import numpy as np
from media import make_clip

from looklisten.core.config import get_config
from looklisten.core.fileio import default_file_mode
from looklisten.media.overlay import write_overlay_video
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_checkpoint_and_overlay_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        cfg = get_config("tiny")
        ckpt = save_checkpoint(tmp_path / "run", create_model(cfg), cfg)
        files = [p for p in ckpt.iterdir() if p.is_file()]
        assert {p.name for p in files} >= {"model.safetensors", "config.json"}
        for p in files:
            assert _mode(p) == default_file_mode() == 0o640, p.name
        clip = make_clip(tmp_path / "a.mp4", "h264-aac", 1.0, 10.0, 16000, 1, size=(64, 48))
        out = write_overlay_video(
            clip.path, tmp_path / "o.mp4", np.zeros((2, 3, 4), np.float32), np.array([0.0, 0.5])
        )
        assert _mode(out) == 0o640
    finally:
        os.umask(old)
