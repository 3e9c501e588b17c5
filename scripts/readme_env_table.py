"""Write (``--write``) or check the environment table of README.md from the settings model."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fender._envdocs import render_env_table

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- env-table:start -->", "<!-- env-table:end -->"


def rendered(text: str) -> str:
    """``text`` with the table between the markers regenerated."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README.md lacks the {START} ... {END} markers")
    return pattern.sub(lambda _: f"{START}\n{render_env_table()}\n{END}", text)


def main() -> int:
    """Write or check the table; exit 1 when it is stale."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite README.md in place")
    args = parser.parse_args()
    text = README.read_text(encoding="utf-8")
    new = rendered(text)
    if args.write:
        README.write_text(new, encoding="utf-8")
        return 0
    if new != text:
        print("README.md's environment table is stale: run `make readme`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
