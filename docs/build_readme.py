"""Build README.md from the documentation's first two pages: `python docs/build_readme.py`.

The README is what the project is, the two opening commands, the install line, the
walk-through and a map of the documentation: ``docs/index.md`` with
``docs/getting-started.md`` before its map, their links turned to point into ``docs/``.
The reference lives in the other pages of ``docs/``, built by MkDocs (``mkdocs.yml``).
tests/docs/test_readme.py checks that README.md is up to date and runs every page's examples.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = ["index.md", "getting-started.md"]
MAP = "## Documentation\n"
NOTE = "<!-- Generated from docs/index.md and docs/getting-started.md: edit those. -->\n"
#: A relative link to a page or image of docs/: ``](jobs.md#jobs)``, ``](dashboard.png)``.
_LOCAL_LINK = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s]+)\)")


def build() -> str:
    """The home page up to its map of the documentation, the walk-through, then the map: so
    the install line and the walk-through follow the two opening commands at once."""
    home, walk = ((DOCS / name).read_text().strip() + "\n" for name in PAGES)
    top, _, docs_map = home.partition(MAP)
    parts = [top.rstrip() + "\n", walk, MAP + docs_map]
    return NOTE + "\n".join(_LOCAL_LINK.sub(lambda m: f"](docs/{m.group(1)})", part)
                             for part in parts)


if __name__ == "__main__":
    (ROOT / "README.md").write_text(build())
    sys.stdout.write("wrote README.md\n")
