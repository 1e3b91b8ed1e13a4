"""Where the third-party test files live, read from the installed packages only (pydicom's
``get_testdata_file(s)`` may try to download missing files; tests must never download)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import data_store
import deid_data
import pydicom

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
DATA_STORE = Path(data_store.__file__).parent / "data"
DEID_DATA = Path(deid_data.__file__).parent / "data"
# DICOM files other projects ship in their wheels for their own tests (some gzip-compressed).
# Located without importing them: their import would change process-wide state for every test.
NIBABEL_FILES = Path(str(importlib.util.find_spec("nibabel").origin)).parent / "nicom" / "tests" / "data"
PYNETDICOM_FILES = Path(str(importlib.util.find_spec("pynetdicom").origin)).parent / "tests" / "dicom_files"


def sample_file(name: str) -> Path:
    """A pydicom test file by name, from pydicom's own folder or the pydicom-data store."""
    for folder in (PYDICOM_FILES, DATA_STORE):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(name)


def files_under(folder: Path) -> list[Path]:
    """Every data file below ``folder`` (Python sources and caches excluded), sorted."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )


#: OCR reads every frame of a burned-in-risk object: files with more frames are slow tests.
MANY_FRAMES = 16


def frame_count(path: Path) -> int:
    """Number of Frames from the header (1 when absent or unreadable)."""
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["NumberOfFrames"])
        return int(header.get("NumberOfFrames", 1) or 1)
    except Exception:  # noqa: BLE001 - unreadable files are still run, and quarantined
        return 1


def dicom_files_under(folder: Path) -> list[Path]:
    """The ``.dcm`` and ``.dcm.gz`` files below ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.name.endswith((".dcm", ".dcm.gz")))


def read_bytes(path: Path) -> bytes:
    """A test file's bytes, gunzipped when it is stored compressed."""
    import gzip

    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data
