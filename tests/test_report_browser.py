"""The reports as web pages: opened in a real headless browser (Chromium), every image loads and no
script or resource error is raised. ``.ci/run`` installs Debian's chromium; where no Chromium is
installed these tests are skipped, saying so. The documentation site opens the same way."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from msareid.cli import main

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (.ci/run installs Debian's)")

# Collects resource and script errors, then writes what the page shows into the DOM once it has loaded.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(e.message || ('failed to load ' +
  ((e.target && (e.target.src || e.target.href)) || '?'))), true);
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(' ')); __consoleError(...args); };
window.addEventListener('load', () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
  document.body.setAttribute('data-probe', JSON.stringify({images: images.length, broken, errors: window.__errors}));
});
</script>"""


def _open_in_browser(page: Path) -> dict:
    """Load ``page`` (a copy beside it with the probe, so relative links resolve alike) headless."""
    probe = page.with_name(f".probe_{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    try:
        proc = subprocess.run([BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               f"--user-data-dir={page.parent / '.chromium'}", "--allow-file-access-from-files",
                               "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, f"the page did not finish loading: {proc.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.slow
def test_run_and_ablation_reports_load_in_a_browser(tiny_checkpoint: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "ab" / "runs" / "B" / "seed0"
    shutil.copytree(tiny_checkpoint.parent, run)
    assert main(["report", str(run)]) == 0
    shown = _open_in_browser(run / "report.html")
    assert shown["images"] >= 5 and shown["broken"] == [] and shown["errors"] == []
    # the same run as a one-row ablation, collected without training, then its report
    config = run / "config.toml"
    assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--out", str(run / "eval.json"), "--json"]) == 0
    assert main(["ablate", "--config", str(config), "--row", "B:", "--seeds", "0", "--out", str(tmp_path / "ab"),
                 "--collect"]) == 0
    assert main(["report", str(tmp_path / "ab")]) == 0
    capsys.readouterr()
    shown = _open_in_browser(tmp_path / "ab" / "report.html")
    assert shown["images"] >= 4 and shown["broken"] == [] and shown["errors"] == []
    # the probe does see a broken picture
    page = (tmp_path / "ab" / "report.html").read_text()
    (tmp_path / "ab" / "broken.html").write_text(page.replace("ablation.png", "missing.png"))
    assert _open_in_browser(tmp_path / "ab" / "broken.html")["broken"]


def test_the_documentation_site_opens_in_a_browser(tmp_path: Path) -> None:
    """The site that `make test` builds: its index loads offline with every picture and no error."""
    import sys

    repo = Path(__file__).resolve().parents[1]
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=repo, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    shown = _open_in_browser(tmp_path / "site" / "index.html")
    assert shown["images"] >= 3 and shown["broken"] == [] and shown["errors"] == []
    design = _open_in_browser(tmp_path / "site" / "design.html")
    assert design["broken"] == [] and design["errors"] == []
