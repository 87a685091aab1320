"""The packaging ships all of service/ as `gradhealth`.

pyproject.toml lists every package by hand (``find:`` cannot rename service/ to gradhealth), so a new
subpackage left off the list would install without complaint and fail only at import on a user's
machine. These tests compare the list with the folders on disk.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
SOURCE = ROOT / SETUPTOOLS["package-dir"]["gradhealth"]


def _name(folder: Path) -> str:
    """The import name of a folder under service/: service/logs/readers -> gradhealth.logs.readers."""
    return ".".join(["gradhealth", *folder.relative_to(SOURCE).parts])


def _packages_on_disk() -> set[str]:
    return {_name(init.parent) for init in SOURCE.rglob("__init__.py") if "__pycache__" not in init.parts}


def test_the_import_name_maps_to_the_service_folder() -> None:
    assert SOURCE == ROOT / "service"
    assert (SOURCE / "__init__.py").is_file()


def test_every_package_folder_is_listed_and_every_listed_package_exists() -> None:
    on_disk, listed = _packages_on_disk(), set(SETUPTOOLS["packages"])
    assert {"gradhealth", "gradhealth.logs.readers"} <= on_disk   # the walk really found packages
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == set(), "listed in pyproject.toml but not a package folder under service/"


def test_every_python_file_is_in_a_listed_package_or_package_data() -> None:
    """A module in a folder without __init__.py (Alembic's) ships only through package-data."""
    listed = set(SETUPTOOLS["packages"])
    data = SETUPTOOLS.get("package-data", {}).get("gradhealth", [])
    dropped = []
    for path in SOURCE.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(SOURCE).as_posix()
        if _name(path.parent) not in listed and not any(fnmatch.fnmatch(relative, p) for p in data):
            dropped.append(relative)
    assert dropped == [], "these files would be left out of the installed package"
