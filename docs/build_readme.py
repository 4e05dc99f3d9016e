"""Build README.md from docs/sections/*.md, in the order below: `python docs/build_readme.py`.

Sections are kept apart so each has one owner and the tests can run each section's examples;
tests/test_readme.py checks that README.md is up to date with them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ROOT / "docs" / "sections"
ORDER = [  # one per line, so sections can be added without touching their neighbours
    "00-intro",
    "10-core",
    "20-production",
    "middleware",
    "delayed-jobs",
    "push-delivery",
    "periodic-jobs",
    "iterating-jobs",
    "dead-jobs",
    "dashboard",
    "django",
    "command-line",
    "deploying",
    "benchmarks",
    "99-development",
]
NOTE = "<!-- Generated from docs/sections/ by docs/build_readme.py: edit those files. -->\n"


def build() -> str:
    missing = [name for name in ORDER if not (SECTIONS / f"{name}.md").exists()]
    extra = sorted(p.stem for p in SECTIONS.glob("*.md") if p.stem not in ORDER)
    if missing or extra:
        raise SystemExit(f"docs/sections: missing {missing}, not in ORDER {extra}")
    parts = [(SECTIONS / f"{name}.md").read_text().strip() + "\n" for name in ORDER]
    return NOTE + "\n".join(parts)


if __name__ == "__main__":
    (ROOT / "README.md").write_text(build())
    sys.stdout.write("wrote README.md\n")
