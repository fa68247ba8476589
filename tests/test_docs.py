"""The README a newcomer reads in five minutes, and the documentation site built strict."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import looklisten

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def _prose(text: str) -> list[str]:
    """Lines of prose (not code) worth comparing between pages."""
    out, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
            continue
        line = line.strip()
        if not fence and len(line) >= 60 and not line.startswith(("|", "--8<--", "<!--")):
            out.append(line)
    return out


def test_the_readme_is_short_and_in_the_newcomers_order():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move text into docs/"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## Two commands", "## Quick start", "## Where to read more"]
    text = "\n".join(lines)
    assert text.index("make demo") < text.index("make test") < text.index("## Quick start")
    quick = text[text.index("## Quick start") : text.index("## Where to read more")]
    for job in ("looklisten train", "looklisten embed", "looklisten search", "looklisten localize"):
        assert job in quick, job
    assert "looklisten eval" in quick
    for call in ("looklisten.train(", "looklisten.embed_audio(", "looklisten.search("):
        assert call in quick, call
    assert "looklisten.localize(" in quick and "looklisten.evaluate_" in quick


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    pages = [README, *sorted(DOCS.rglob("*.md"))]
    broken = []
    for page in pages:
        for target, _ in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_text_is_moved_not_duplicated():
    """A paragraph lives in the README or in docs/, never in both (the docs' home page
    includes the README's parts by reference)."""
    readme = set(_prose(README.read_text(encoding="utf-8")))
    twice = [
        f"{p.relative_to(ROOT)}: {line[:70]}"
        for p in sorted(DOCS.rglob("*.md"))
        for line in _prose(p.read_text(encoding="utf-8"))
        if line in readme
    ]
    assert not twice, twice


def test_the_api_reference_covers_every_public_name():
    ref = (DOCS / "api" / "reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: looklisten\.[\w.]+\.(\w+)$", ref, flags=re.M))
    missing = [n for n in looklisten.__all__ if n != "__version__" and n not in documented]
    assert not missing, f"add to docs/api/reference.md: {missing}"


def test_the_site_builds_in_strict_mode(tmp_path):
    """A broken link, anchor, include or API reference fails the build (mkdocs.yml: strict)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-3000:]
    home = re.sub(r"<[^>]+>", "", (tmp_path / "index.html").read_text(encoding="utf-8"))
    assert "Quick start" in home and "looklisten train VIDEOS/" in home  # the README's parts
    ref = (tmp_path / "api" / "reference" / "index.html").read_text(encoding="utf-8")
    for name in (
        "tasks.embed.embed_audio",
        "tasks.localize.localize_video",
        "evaluation.retrieval.evaluate_retrieval",
        "models.checkpoint.NewerCheckpointError",
    ):
        assert f'id="looklisten.{name}"' in ref, name
    # the numpy "Parameters" sections became tables
    assert "Parameters:" in ref or "Parameters</" in ref


def test_a_broken_reference_fails_the_strict_build(tmp_path):
    """The strict build is not blind: a page naming a function that does not exist fails."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n::: looklisten.tasks.embed.no_such_function\n")
    cfg = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    cfg = re.sub(r"(?ms)^nav:.*?(?=^\w)", "", cfg).replace(
        "paths: [src]", f"paths: [{ROOT / 'src'}]"
    )
    (tmp_path / "mkdocs.yml").write_text(cfg)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "no_such_function" in proc.stderr
