"""Write pip constraints pinning every runtime requirement of setup.py to its floor.

``make test`` installs the package with these constraints in a second environment (Python
3.10, no torch: what Humble's and Jazzy's users run, NumPy 1) and runs the torch-free tests
there, so the floors in setup.py are versions that were tested, not guesses.

    python test/dependency_floors.py > floors.txt
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path
from unittest import mock

import setuptools

REPO = Path(__file__).resolve().parents[1]


def floors() -> list[str]:
    """``name==floor`` for each ``name>=floor`` of setup.py's install_requires.

    Raises:
        SystemExit: a requirement without a floor (it could not be tested at one).
    """
    captured: dict = {}
    with mock.patch.object(setuptools, "setup", lambda **kw: captured.update(kw)):
        runpy.run_path(str(REPO / "setup.py"), run_name="__main__")
    pins = []
    for requirement in captured["install_requires"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)", requirement.split(";")[0])
        if match is None:
            raise SystemExit(f"{requirement!r} has no plain >= floor to test")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    import os

    os.chdir(REPO)  # setup.py globs its data files relative to the repository
    sys.stdout.write("\n".join(floors()) + "\n")
