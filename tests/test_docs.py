"""The documents that point at tests point at tests that exist."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
REFERENCE = re.compile(r"`?(test_\w+\.py)::(test_[\w*]+)")


def test_every_test_named_in_reliability_md_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    references = REFERENCE.findall(text)
    assert len(references) > 30
    missing = []
    for file, name in references:
        source = (ROOT / "tests" / file).read_text()
        defined = re.findall(r"^def (test_\w+)", source, re.MULTILINE)
        if not fnmatch.filter(defined, name):
            missing.append(f"{file}::{name}")
    assert not missing, missing
