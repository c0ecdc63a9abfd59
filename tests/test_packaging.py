"""A non-editable install (the container's `pip install .`) must ship every template:
a page or an email whose template is missing fails only at run time."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_template_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    templates = [p for p in (ROOT / "app").rglob("templates/**/*") if p.is_file()]
    assert templates
    missing = []
    for path in templates:
        # package-data patterns are relative to the package holding the templates folder.
        package_dir = next(p for p in path.parents if p.name == "templates").parent
        relative = path.relative_to(package_dir).as_posix()
        if not any(
            fnmatch.fnmatch(relative, pattern) and relative.count("/") == pattern.count("/")
            for pattern in patterns
        ):
            missing.append(relative)
        assert (package_dir / "__init__.py").exists(), f"{package_dir} is not a package"
    assert missing == []
