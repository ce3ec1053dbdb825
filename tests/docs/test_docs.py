"""The docs build, strictly, and their reference says everything the code has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from keel import errors
from keel.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert missing == []


def test_every_error_code_says_what_it_means() -> None:
    def tree(cls: type[errors.KeelError]) -> list[type[errors.KeelError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in tree(sub))]

    silent = [cls.__name__ for cls in tree(errors.KeelError) if not (cls.__doc__ or "").strip()]
    assert silent == []


def test_the_docs_build_strictly_with_the_generated_reference(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    settings = (site / "reference" / "settings.html").read_text()
    for name, field in Settings.model_fields.items():
        env_name = field.validation_alias if isinstance(field.validation_alias, str) else f"KEEL_{name.upper()}"
        assert env_name in settings, env_name
    assert "keel ingest" in (site / "reference" / "cli.html").read_text()
    assert "/v1/query" in (site / "reference" / "http-api.html").read_text()
    assert "retrieval_unavailable" in (site / "reference" / "errors.html").read_text()
    # Offline: no page loads a script, a style sheet or a font from anywhere but the site.
    fetched = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.IGNORECASE)
    for page in site.rglob("*.html"):
        assert not fetched.search(page.read_text()), page


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for link in ("docs/tutorials/first-run.md", "docs/reference", "docs/operations/runbooks.md"):
        assert link in readme
