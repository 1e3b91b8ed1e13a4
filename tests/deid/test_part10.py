"""The Part 10 writer (``lakehouse.dicom.part10``) writes exactly what ``pydicom.dcmwrite(...,
enforce_file_format=True)`` writes, for de-identified datasets and for datasets as read."""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path

import pydicom
import pytest
from corpora import MANY_FRAMES, frame_count
from planted import write_corpus
from pydicom.data import get_charset_files, get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from lakehouse.deid import DeidSettings, deidentify
from lakehouse.dicom.elements import known_vr
from lakehouse.dicom.part10 import rebuild_file_meta, transfer_syntax_of, write_part10

KEY = bytes(range(32))
OPTION_SETS = (
    frozenset(),
    frozenset({"clean-pixel-data", "retain-modified-dates", "clean-descriptors", "clean-structured-content"}),
    frozenset({"retain-full-dates", "retain-uids", "retain-patient-characteristics", "retain-device-identity"}),
)


def pydicom_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, copy.deepcopy(ds), enforce_file_format=True)
    return buffer.getvalue()


def sources(tmp_path: Path) -> list[Path]:
    write_corpus(tmp_path, 16)
    files = [Path(p) for p in get_testdata_files() if os.path.isfile(p)] + [Path(p) for p in get_charset_files()]
    return sorted(tmp_path.glob("*.dcm")) + files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return sources(tmp_path_factory.mktemp("part10"))


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(sorted(o)) or "basic")
def test_deidentified_objects_are_written_as_pydicom_writes_them(corpus: list[Path], options: frozenset[str]) -> None:
    written = 0
    for path in corpus:
        if "clean-pixel-data" in options and frame_count(path) > MANY_FRAMES:
            continue  # OCR of every frame of a long cine: test_third_party's slow tests
        result = deidentify(path.read_bytes(), DeidSettings("p", KEY, options))
        if result.dataset is None:
            continue
        assert result.data == write_part10(copy.deepcopy(result.dataset)) == pydicom_bytes(result.dataset), path.name
        written += 1
    assert written > 80  # pydicom's 50 header-only DICOMDIR images are quarantined (missing_pixel_data)


def test_datasets_as_read_are_written_as_pydicom_writes_them(corpus: list[Path]) -> None:
    """Raw elements in every encoding pydicom reads (implicit, big endian, nested, charsets)."""
    written = 0
    for path in corpus:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            continue
        for tag in [t for t in ds.keys() if t >> 16 in (0, 2)]:  # noqa: SIM118 - no conversion
            del ds[tag]
        rebuild_file_meta(ds, transfer_syntax_of(ds))
        try:
            expected = pydicom_bytes(_by_dictionary_vr(copy.deepcopy(ds)))
        except Exception:  # noqa: BLE001, S112 - files pydicom itself cannot write are out of scope
            continue
        assert write_part10(copy.deepcopy(ds)) == expected, path.name
        written += 1
    assert written > 100


def _by_dictionary_vr(ds: Dataset) -> Dataset:
    """Standard attributes stored with explicit VR UN converted as pydicom converts them on access:
    our writer writes them by their dictionary VR (PS3.5 6.2.2), pydicom's as the UN it read."""
    for tag in list(ds.keys()):  # raw elements: keys() converts nothing
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.VR == "UN" and known_vr(raw):
            ds[tag]  # access converts the element and stores it
        elif not isinstance(raw, RawDataElement) and raw.VR == "SQ":
            for item in raw.value:
                _by_dictionary_vr(item)
    return ds


@pytest.mark.parametrize("charset", ["ISO_IR 192", "ISO_IR 100"])
def test_a_changed_character_set_is_written_as_pydicom_writes_it(tmp_path: Path, charset: str) -> None:
    """Raw text read in one character set and a dataset (or its parent) now declaring another:
    such datasets go through pydicom's own re-encoding."""
    write_corpus(tmp_path, 4)  # ct_utf8 objects hold nested items without their own charset
    written = 0
    for path in sorted(tmp_path.glob("*.dcm")) + [Path(p) for p in get_charset_files()]:
        ds = pydicom.dcmread(path, force=True)
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            continue
        for tag in [t for t in ds.keys() if t >> 16 in (0, 2)]:  # noqa: SIM118 - no conversion
            del ds[tag]
        ds.SpecificCharacterSet = charset
        rebuild_file_meta(ds, transfer_syntax_of(ds))
        try:
            expected = pydicom_bytes(_by_dictionary_vr(copy.deepcopy(ds)))
        except Exception:  # noqa: BLE001, S112 - text pydicom cannot encode in the new set
            continue
        assert write_part10(copy.deepcopy(ds)) == expected, path.name
        written += 1
    assert written >= 4
