"""The synthetic archive: deterministic, realistic, and covering every kind of object."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from lakehouse.errors import ConfigError
from lakehouse.synth import generate_archive, synthesize_archive
from lakehouse.synth.modules import PRIVATE_CREATOR


def _datasets(**kwargs: object) -> dict[str, Dataset]:
    return {key: dcmread(io.BytesIO(data)) for key, data in generate_archive(**kwargs)}  # type: ignore[arg-type]


def test_same_seed_same_bytes_other_seed_other_people() -> None:
    first = list(generate_archive(patients=2, seed=3))
    assert first == list(generate_archive(patients=2, seed=3))
    other = list(generate_archive(patients=2, seed=4))
    assert {k for k, _ in first}.isdisjoint(k for k, _ in other)
    names = {str(dcmread(io.BytesIO(d)).PatientName) for _, d in first}
    assert len(names) == 2 and all("^" in n for n in names)


def test_every_kind_of_object_is_there() -> None:
    datasets = _datasets(patients=3, seed=1)
    assert {ds.Modality for ds in datasets.values()} == {"CT", "MR", "CR", "US", "OT", "SR", "KO"}
    syntaxes = {str(ds.file_meta.TransferSyntaxUID) for ds in datasets.values()}
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"} <= syntaxes
    cr = next(ds for ds in datasets.values() if ds.Modality == "CR")
    assert cr.pixel_array.shape == (96, 80)  # RLE Lossless decodes
    us = next(ds for ds in datasets.values() if ds.Modality == "US")
    assert (us.BurnedInAnnotation, us.PhotometricInterpretation, us.NumberOfFrames) == ("YES", "RGB", 3)
    assert us.pixel_array.shape == (3, 48, 64, 3)


def test_headers_are_rich_and_identifying() -> None:
    for ds in _datasets(patients=3, seed=2).values():
        assert sum(1 for _ in ds.iterall()) >= 95
        assert any(elem.VR == "SQ" for elem in ds)
        assert ds.private_block(0x0009, PRIVATE_CREATOR)[0x01].value  # a private block with an identifier
        for keyword in (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientAddress",
            "AccessionNumber",
            "InstitutionName",
            "ReferringPhysicianName",
            "StudyDate",
        ):
            assert ds.get(keyword), keyword


def test_sr_has_nested_text_and_names_and_ko_references_the_study() -> None:
    datasets = _datasets(patients=1, seed=5)
    sops = {ds.SOPInstanceUID: ds for ds in datasets.values()}
    sr = next(ds for ds in datasets.values() if ds.Modality == "SR")
    value_types = {item.ValueType for item in sr.ContentSequence}
    assert value_types == {"PNAME", "CONTAINER"}
    nested = [i for c in sr.ContentSequence if c.ValueType == "CONTAINER" for i in c.ContentSequence]
    assert nested and all(i.ValueType == "TEXT" for i in nested)
    assert any(sr.PatientID in i.TextValue for i in nested)  # free text naming the patient, as reports do
    ko = next(ds for ds in datasets.values() if ds.Modality == "KO")
    refs = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in ko.ContentSequence]
    assert refs and all(sops[r].StudyInstanceUID == ko.StudyInstanceUID for r in refs)


def test_layouts(tmp_path: Path) -> None:
    hierarchical = _datasets(patients=1, seed=6)
    for key, ds in hierarchical.items():
        assert key == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    opaque = _datasets(patients=1, seed=6, layout="opaque")
    assert len(opaque) == len(hierarchical)
    for key, ds in opaque.items():
        assert ds.SOPInstanceUID not in key and ds.StudyInstanceUID not in key and not key.endswith(".dcm")
    keys = synthesize_archive(tmp_path / "a", patients=1, seed=6, layout="opaque")
    assert sorted(keys) == sorted(opaque)
    assert all((tmp_path / "a" / k).is_file() for k in keys)


def test_large_ct_matrix_for_benchmarks() -> None:
    _, data = next(generate_archive(patients=1, seed=7, ct_size=512))
    ds = dcmread(io.BytesIO(data))
    assert (ds.Rows, ds.Columns) == (512, 512) and 500_000 < len(data) < 600_000


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError):
        list(generate_archive(patients=1, layout="flat"))
    with pytest.raises(ConfigError):
        list(generate_archive(patients=1, ct_size=2))
