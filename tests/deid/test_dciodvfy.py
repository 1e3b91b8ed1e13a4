"""dciodvfy (Debian package ``dicom3tools``) finds no new errors in de-identified outputs
compared with their inputs: the profile's dummy values, the rebuilt file meta and re-encoded
(masked) pixel data keep objects valid against their IOD."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from corpora import DATA_STORE, DEID_DATA, PYDICOM_FILES, files_under, sample_file
from planted import KINDS, write_corpus

from lakehouse.deid import DeidSettings, deidentify, parse_options

pytestmark = pytest.mark.skipif(
    shutil.which("dciodvfy") is None, reason="dciodvfy missing: apt-get install dicom3tools"
)

SETTINGS = {
    "basic": DeidSettings(project="dciodvfy", key=b"dciodvfy-test-key-0000000000000000", options=frozenset()),
    "clean-all": DeidSettings(
        project="dciodvfy",
        key=b"dciodvfy-test-key-0000000000000000",
        options=parse_options(
            ["clean-descriptors", "clean-structured-content", "clean-graphics", "clean-pixel-data"]
        ),
    ),
}
THIRD_PARTY = ("CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "color3d_jpeg_baseline.dcm")
_ERROR = re.compile(r"^Error - (.*)$", re.MULTILINE)


def _errors(path: Path) -> set[str]:
    run = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, errors="replace", timeout=120, check=False
    )  # dciodvfy exits non-zero on errors
    return set(_ERROR.findall(run.stdout + run.stderr))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("dciodvfy-in")
    write_corpus(folder, len(KINDS))
    planted = sorted(folder.glob("*.dcm"))
    return planted + [sample_file(name) for name in THIRD_PARTY]


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_no_new_dciodvfy_errors(inputs: list[Path], setting: str, tmp_path: Path) -> None:
    checked, new_errors = 0, {}
    for source in inputs:
        result = deidentify(source.read_bytes(), SETTINGS[setting])
        if result.outcome != "deidentified":
            continue
        output = tmp_path / source.name
        output.write_bytes(result.data)
        added = _errors(output) - _errors(source)
        if added:
            new_errors[source.name] = sorted(added)
        checked += 1
    assert checked >= len(inputs) // 2, "most inputs must be published to be checked"
    assert not new_errors, new_errors


# A source whose Referenced SOP Instance UID is invalid ("0") is not checked against the SR's
# evidence sequences by dciodvfy; the replaced, valid UID is, and pydicom's SR samples list no
# evidence at all. Not an error de-identification adds, so it is compared away.
EVIDENCE_CHECK = "Referenced SOP Instance is not listed in CurrentRequestedProcedureEvidenceSequence"
_UID_VALUE = re.compile(r"<[0-9. ]*>")  # messages quote UIDs, which de-identification replaces


def _error_kinds(path: Path) -> set[str]:
    return {_UID_VALUE.sub("<uid>", e) for e in _errors(path) if not e.startswith(EVIDENCE_CHECK)}


@pytest.mark.slow
@pytest.mark.parametrize("folder", [PYDICOM_FILES, DATA_STORE, DEID_DATA], ids=["pydicom", "pydicom-data", "deid-data"])
def test_no_new_dciodvfy_errors_on_the_public_corpora(folder: Path, tmp_path: Path) -> None:
    """Basic profile over every public test file: no error the source did not have."""
    new_errors = {}
    for source in files_under(folder):
        if source.suffix == ".zip":
            continue
        result = deidentify(source.read_bytes(), SETTINGS["basic"])
        if result.outcome != "deidentified":
            continue
        output = tmp_path / "out.dcm"
        output.write_bytes(result.data)
        if added := _error_kinds(output) - _error_kinds(source):
            new_errors[source.name] = sorted(added)
    assert not new_errors, new_errors
