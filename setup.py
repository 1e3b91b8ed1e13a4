"""Ships the top-level ``schemas/`` folder as the package ``lakehouse.schemas`` (its data
files as package data), so a wheel carries it; ``lakehouse/resources.py`` reads it.
pyproject.toml cannot both find packages and map an outside folder into one."""

from setuptools import find_namespace_packages, find_packages, setup

SCHEMA_PACKAGES = [
    "lakehouse.schemas",
    *(f"lakehouse.schemas.{name}" for name in find_namespace_packages(where="schemas", exclude=["__pycache__"])),
]

setup(
    packages=[*find_packages(include=["lakehouse*"]), *SCHEMA_PACKAGES],
    package_dir={"lakehouse.schemas": "schemas"},
    package_data={"lakehouse": ["py.typed"], **{name: ["*.json", "*.md"] for name in SCHEMA_PACKAGES}},
)
