"""Wheels of every pinned requirement for another machine's Python (`make wheelhouse`): usage FOLDER PYTHON_VERSION.

Reads FOLDER/requirements.txt (name==version lines). A package with a wheel on the index for that Python and
Linux x86_64 is downloaded as is; one that ships only an sdist (sqlitedict, rouge-score, ... : pure Python) is
built into a wheel here. A package that is neither is named and the script exits 1.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")


def fetch(requirement: str, folder: Path, python: str) -> str | None:
    """None when the wheel is in folder, else why not."""
    pip = [sys.executable, "-m", "pip", "-q"]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    binary = subprocess.run(
        [
            *pip,
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python,
            *platforms,
            "-d",
            str(folder),
            requirement,
        ],
        capture_output=True,
        text=True,
    )
    if binary.returncode == 0:
        return None
    built = subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), requirement], capture_output=True, text=True)
    if built.returncode != 0:
        return (
            f"{requirement}: no wheel for Python {python}, and its sdist does not build: "
            f"{(built.stderr.strip().splitlines() or ['?'])[-1]}"
        )
    return None


def main(folder: str, python: str) -> int:
    out = Path(folder)
    wanted = [
        line.split(";")[0].strip()
        for line in (out / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    with ThreadPoolExecutor(4) as pool:
        problems = [p for p in pool.map(lambda r: fetch(r, out, python), wanted) if p]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(wanted) - len(problems)} of {len(wanted)} packages in {out}/ for Python {python}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: wheelhouse.py FOLDER PYTHON_VERSION")
    sys.exit(main(sys.argv[1], sys.argv[2]))
