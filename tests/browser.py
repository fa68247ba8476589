"""A real headless Chromium for tests: find it, install it (Debian), load pages with it.

:func:`find_browser` looks for ``chromium``, ``chromium-browser``,
``google-chrome`` (or ``$LOOKLISTEN_BROWSER``) on the PATH. :func:`ensure_browser`
also installs Debian's ``chromium`` package when none is found and ``apt-get``
is usable (root on Debian), once per machine: a lock file serialises parallel
test processes, and a failed attempt is remembered (in the same temporary
folder) so that other tests skip at once instead of retrying.

:func:`check_page` loads a page in headless Chromium and reports, for every
``<img>``, whether it decoded (``naturalWidth > 0``) and, for every
``<audio>``, whether its source loaded (metadata read, no ``error``). Nothing is
injected into the page itself: the page is served, with a small harness page,
from a local HTTP server on 127.0.0.1 (one origin, so the harness may inspect
the page in an ``<iframe>``); the harness writes its findings as JSON into its
own DOM, which Chromium prints with ``--dump-dom`` (``--virtual-time-budget``
lets the page finish loading first). :func:`screenshot` saves a PNG of a page.
No dependencies beyond the standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DEBIAN_PACKAGE = "chromium"
_STATE_DIR = Path(tempfile.gettempdir()) / "looklisten-browser"
_LOCK = _STATE_DIR / "install.lock"
_FAILED = _STATE_DIR / "install-failed.txt"
INSTALL_TIMEOUT = 1200  # seconds: the package and its dependencies are ~100 MB
FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    # no calls home: on a machine with no network they fail, many at a time
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
)


def find_browser() -> str | None:
    """Path of a Chromium-like browser on the PATH (or ``$LOOKLISTEN_BROWSER``), else None."""
    env = os.environ.get("LOOKLISTEN_BROWSER")
    if env:
        return shutil.which(env) or (env if os.access(env, os.X_OK) else None)
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _can_apt() -> str | None:
    """None when apt-get can install packages here, else why not."""
    if not Path("/etc/debian_version").is_file():
        return "not a Debian system"
    if shutil.which("apt-get") is None:
        return "no apt-get"
    if os.geteuid() != 0:
        return "apt-get needs root (not root)"
    return None


def _apt(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["apt-get", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ensure_browser() -> tuple[str | None, str]:
    """Find a browser, installing Debian's ``chromium`` if needed and possible.

    Returns
    -------
    path : str or None
        The browser, or None when there is none and none could be installed.
    message : str
        What happened (why there is none, for ``pytest.skip``).
    """
    path = find_browser()
    if path:
        return path, f"found {path}"
    why = _can_apt()
    if why is not None:
        return None, f"no chromium / google-chrome on PATH and cannot install one: {why}"
    _STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing it
        try:
            path = find_browser()
            if path:
                return path, f"found {path}"
            if _FAILED.is_file():
                return None, f"installing chromium failed earlier: {_FAILED.read_text()[-500:]}"
            try:
                res = _apt(
                    "install",
                    "-y",
                    "--no-install-recommends",
                    DEBIAN_PACKAGE,
                    timeout=INSTALL_TIMEOUT,
                )
                if res.returncode != 0:  # stale package lists: refresh once and retry
                    _apt("update", timeout=INSTALL_TIMEOUT)
                    res = _apt(
                        "install",
                        "-y",
                        "--no-install-recommends",
                        DEBIAN_PACKAGE,
                        timeout=INSTALL_TIMEOUT,
                    )
            except subprocess.TimeoutExpired:
                _FAILED.write_text(f"apt-get timed out after {INSTALL_TIMEOUT} s")
                return None, f"installing chromium: apt-get timed out after {INSTALL_TIMEOUT} s"
            path = find_browser()
            if res.returncode != 0 or path is None:
                _FAILED.write_text(
                    f"apt-get install {DEBIAN_PACKAGE} (exit {res.returncode}): {res.stderr.strip()}"
                )
                return None, f"could not install chromium: {_FAILED.read_text()[-500:]}"
            return path, f"installed {DEBIAN_PACKAGE}: {path}"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------
# Serving and loading pages
# ---------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log on stderr
        pass


@contextlib.contextmanager
def serve(directory: str | os.PathLike):
    """Serve ``directory`` on 127.0.0.1 (a free port); yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=os.fspath(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="looklisten-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


# The harness: loads the page in an iframe (same origin), waits for every image
# to decode and every audio element to load its source (forcing preload, in the
# harness's copy of the DOM only), then writes a JSON report into <pre id=result>.
HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>harness</title></head>
<body><pre id="result">pending</pre>
<iframe id="page" src="PAGE" style="width:1200px;height:800px"></iframe>
<script>
const frame = document.getElementById("page");
function done(obj) { document.getElementById("result").textContent = JSON.stringify(obj); }
function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise(r => setTimeout(() => r(what), ms))]);
}
frame.addEventListener("load", async () => {
  try {
    const doc = frame.contentDocument;
    const imgs = Array.from(doc.images);
    const images = await Promise.all(imgs.map(async (img, i) => {
      let err = null;
      try { await withTimeout(img.decode(), 10000, null); } catch (e) { err = String(e); }
      return {i: i, alt: img.alt, scheme: (img.getAttribute("src") || "").slice(0, 30),
              complete: img.complete, naturalWidth: img.naturalWidth,
              naturalHeight: img.naturalHeight, error: err};
    }));
    const auds = Array.from(doc.querySelectorAll("audio"));
    const audios = await Promise.all(auds.map((a, i) => new Promise(resolve => {
      const report = (how) => resolve({i: i, how: how, readyState: a.readyState,
        networkState: a.networkState, duration: a.duration,
        error: a.error ? (a.error.code + ": " + a.error.message) : null,
        scheme: (a.currentSrc || a.getAttribute("src") || "").slice(0, 30)});
      if (a.error) { report("error"); return; }
      if (a.readyState >= 1) { report("ready"); return; }
      a.addEventListener("loadedmetadata", () => report("loadedmetadata"), {once: true});
      a.addEventListener("error", () => report("error"), {once: true});
      const src = a.querySelector("source");
      if (src) src.addEventListener("error", () => report("source error"), {once: true});
      setTimeout(() => report("timeout"), 10000);
      a.preload = "auto";
      a.load();
    })));
    const links = Array.from(doc.querySelectorAll("link[href], script[src], iframe[src]"))
      .map(e => e.getAttribute("href") || e.getAttribute("src"));
    done({title: doc.title, images: images, audios: audios, external: links,
          text_length: doc.body ? doc.body.innerText.length : 0});
  } catch (e) { done({fatal: String(e)}); }
});
</script></body></html>
"""


def check_page(
    page: str | os.PathLike, browser: str, *, budget_ms: int = 30000, timeout: float = 180
) -> dict:
    """Load ``page`` in headless Chromium; report on its images and audio elements.

    Parameters
    ----------
    page : path-like
        An HTML file (served from its folder, with the harness beside it).
    browser : str
        The browser executable (:func:`ensure_browser`).
    budget_ms : int
        Virtual time Chromium gives the page and harness to finish.

    Returns
    -------
    dict
        ``images``: one dict per ``<img>`` (``naturalWidth``, ``naturalHeight``,
        ``complete``, ``error``); ``audios``: one per ``<audio>`` (``how``:
        ``loadedmetadata`` / ``ready`` when its source loaded, ``error`` /
        ``timeout`` otherwise, ``readyState``, ``duration``, ``error``);
        ``external``: link/script/iframe URLs in the page; ``title``;
        ``stderr``: the browser's (for diagnostics).
    """
    page = Path(page).resolve()
    with tempfile.TemporaryDirectory(prefix="looklisten-harness-") as tmp:
        site = Path(tmp)
        shutil.copyfile(page, site / "page.html")
        (site / "harness.html").write_text(HARNESS.replace("PAGE", "page.html"))
        with serve(site) as base:
            res = _run(
                browser,
                [
                    "--autoplay-policy=no-user-gesture-required",
                    "--run-all-compositor-stages-before-draw",
                    f"--virtual-time-budget={budget_ms}",
                    "--dump-dom",
                    f"{base}/harness.html",
                ],
                timeout,
            )
    m = re.search(r'<pre id="result">(.*?)</pre>', res.stdout, re.S)
    if m is None:
        raise RuntimeError(
            f"the harness wrote no result (exit {res.returncode}): {res.stdout[-800:]} {res.stderr[-1500:]}"
        )
    import html

    text = html.unescape(m.group(1))
    if text == "pending":
        raise RuntimeError(f"the page did not finish loading in time: {res.stderr[-1500:]}")
    out = json.loads(text)
    out["stderr"] = res.stderr
    return out


def screenshot(
    page: str | os.PathLike,
    out_png: str | os.PathLike,
    browser: str,
    *,
    size: tuple[int, int] = (1280, 2400),
    timeout: float = 180,
) -> Path:
    """Save a PNG screenshot of ``page`` (a file) at ``size`` = (width, height) CSS pixels."""
    out_png = Path(out_png).resolve()
    out_png.unlink(missing_ok=True)
    res = _run(
        browser,
        [
            f"--window-size={size[0]},{size[1]}",
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=10000",
            f"--screenshot={out_png}",
            Path(page).resolve().as_uri(),
        ],
        timeout,
    )
    if not out_png.is_file():
        raise RuntimeError(f"no screenshot written (exit {res.returncode}): {res.stderr[-1500:]}")
    return out_png


if __name__ == "__main__":  # python tests/browser.py: install / find, then print the path
    print(ensure_browser())
