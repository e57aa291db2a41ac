"""The documentation: the MkDocs site builds with warnings as errors (every link between pages and
to a heading checked), the README stays a short tour whose links all resolve, and the code's
pointers to the documentation name pages and headings that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """The anchor GitHub and MkDocs give a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_anchor(line.lstrip("#")) for line in page.read_text().splitlines() if re.match(r"^#{1,6} ", line)}


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_the_site_builds_with_warnings_as_errors(site: Path) -> None:
    pages = {p.name for p in site.glob("*.html")}
    assert {"index.html", "commands.html", "design.html", "evidence.html", "paper.html"} <= pages
    assert "https://cdnjs" not in (site / "index.html").read_text()  # it opens offline


def test_the_readme_is_a_short_tour_whose_links_resolve() -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    assert len(text.splitlines()) < 300
    for command in ("synth", "check-data", "preview", "cache", "config", "train", "ablate", "evaluate", "extract",
                    "search", "export", "report", "profile"):
        assert f"msareid {command} " in text, f"the README has no example of msareid {command}"
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        assert (REPO / path).exists(), f"README links to {path}, which does not exist"
        if anchor:
            assert anchor in _anchors(REPO / path), f"README links to {target}: no such heading"


def test_the_code_points_to_pages_that_exist() -> None:
    """Comments and messages cite the documentation as ``docs/<page>.md`` (and "heading"): each exists."""
    cited = re.compile(r"docs/(\w+)\.md(?:,? \"([^\"\n]+)\")?")
    files = [*REPO.joinpath("src").rglob("*.py"), *REPO.joinpath("configs").glob("*.toml"),
             *REPO.joinpath("bench").glob("*.sh"), REPO / ".ci" / "run", REPO / "Makefile"]
    for path in files:
        for page, heading in cited.findall(path.read_text()):
            target = REPO / "docs" / f"{page}.md"
            assert target.is_file(), f"{path.relative_to(REPO)} cites docs/{page}.md, which does not exist"
            if heading:
                assert _anchor(heading) in _anchors(target), f"{path.relative_to(REPO)}: no heading {heading!r}"
