"""Repository hygiene: nothing committed carries an unresolved merge."""

from __future__ import annotations

import subprocess

from support import REPO


def test_no_conflict_markers_in_tracked_files() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    bad = []
    for name in filter(None, files):
        path = REPO / name.decode()
        if not path.is_file() or path.suffix in {".png", ".mmdb", ".gz", ".br"}:
            continue
        for lineno, line in enumerate(path.read_bytes().splitlines(), 1):
            if line.startswith((b"<<<<<<< ", b">>>>>>> ")):
                bad.append(f"{name.decode()}:{lineno}")
    assert bad == []
