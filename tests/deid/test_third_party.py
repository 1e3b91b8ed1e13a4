"""Real third-party files: pydicom's bundled test files, the pydicom-data store and deid-data.
Every file is de-identified or quarantined with a reason, under the basic profile and under
all cleaning options with Clean Pixel Data; none raises, none is quarantined for an
unexplained processing error, and published objects are well-formed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from corpora import (
    DATA_STORE,
    DEID_DATA,
    MANY_FRAMES,
    NIBABEL_FILES,
    PYDICOM_FILES,
    PYNETDICOM_FILES,
    dicom_files_under,
    files_under,
    frame_count,
    read_bytes,
)

from lakehouse.deid import DeidResult, DeidSettings, deidentify, parse_options
from lakehouse.deid.pixels import burned_in_risk

SETTINGS = {
    "basic": DeidSettings(
        project="third-party", key=b"third-party-test-key-000000000000", options=frozenset()
    ),
    "clean-all": DeidSettings(
        project="third-party",
        key=b"third-party-test-key-000000000000",
        options=parse_options(
            ["clean-descriptors", "clean-structured-content", "clean-graphics", "clean-pixel-data"]
        ),
    ),
}
CINES = ["ultrasounds/GREYSCALE_CINE.zip", pytest.param("ultrasounds/RGB_CINE.zip", marks=pytest.mark.slow)]


def _ids(folder: Path) -> list:
    return [
        pytest.param(p, id=str(p.relative_to(folder)), marks=[pytest.mark.slow] if frame_count(p) > MANY_FRAMES else [])
        for p in files_under(folder)
        if p.suffix != ".zip"
    ]


def _source(data: bytes) -> pydicom.Dataset | None:
    """The input as a tolerant reader sees it (files without a preamble/meta need force)."""
    for force in (False, True):
        try:
            return pydicom.dcmread(io.BytesIO(data), force=force)
        except Exception:  # noqa: BLE001, S112 - some third-party files are not DICOM at all
            continue
    return None


def _check(data: bytes) -> list[str]:
    """De-identify under every setting; returns the outcomes, asserting what each must satisfy."""
    source = _source(data)
    outcomes = []
    for name, settings in SETTINGS.items():
        result: DeidResult = deidentify(data, settings)
        assert result.outcome in ("deidentified", "quarantined"), name
        if result.outcome == "quarantined":
            assert result.reason and result.reason != "processing_error", (name, result.reason, result.report)
            assert result.data is None
            if result.reason == "residual_phi":
                assert result.tag_path, "a residual-PHI quarantine names the tag path"
            outcomes.append(f"{name}:quarantined:{result.reason}")
            continue
        assert source is not None, "unreadable input cannot be published"
        out = pydicom.dcmread(io.BytesIO(result.data))
        assert out.PatientIdentityRemoved == "YES"
        assert out.SOPInstanceUID != source.SOPInstanceUID
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        if "PixelData" in source and not burned_in_risk(source):
            assert out.PixelData == source.PixelData, "no-risk pixel data passes byte for byte"
            assert out.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
        outcomes.append(f"{name}:deidentified")
    return outcomes


@pytest.mark.parametrize("path", _ids(PYDICOM_FILES))
def test_pydicom_bundled_files(path: Path) -> None:
    _check(path.read_bytes())


@pytest.mark.parametrize("path", _ids(DATA_STORE))
def test_pydicom_data_store(path: Path) -> None:
    _check(path.read_bytes())


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, id=f"{folder.parts[-4 if folder == NIBABEL_FILES else -3]}/{p.name}")
        for folder in (NIBABEL_FILES, PYNETDICOM_FILES)
        for p in dicom_files_under(folder)
    ],
)
def test_files_other_projects_ship(path: Path) -> None:
    """nibabel's and pynetdicom's test files: Siemens CSA and Philips private data, big endian,
    deflated, a bad file meta, JPEG 2000."""
    _check(read_bytes(path))


@pytest.mark.parametrize("path", _ids(DEID_DATA))
def test_deid_data(path: Path) -> None:
    outcomes = _check(path.read_bytes())
    if path.parent.name == "ultrasounds" and path.suffix == ".dcm":
        _masked_not_refused(outcomes)


@pytest.mark.parametrize("archive", CINES)
def test_deid_data_ultrasound_cines(archive: str) -> None:
    with zipfile.ZipFile(DEID_DATA / archive) as bundle:
        (member,) = bundle.namelist()
        data = bundle.read(member)
    _masked_not_refused(_check(data))


def _masked_not_refused(outcomes: list[str]) -> None:
    """Burned-in ultrasounds: refused without Clean Pixel Data; with it the mask rules cover them,
    so any quarantine left is the header stage's (e.g. residual_phi), never a pixel reason."""
    assert outcomes[0] == "basic:quarantined:burned_in_risk"
    assert outcomes[1] == "clean-all:deidentified" or outcomes[1] == "clean-all:quarantined:residual_phi"
