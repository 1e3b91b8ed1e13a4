"""Planted-PHI proof: every token of the answer key is gone from the output bytes (searched raw,
lower case and UTF-16) for every object under every option set, or the object is quarantined
for the reason its kind explains. Objects without burned-in risk keep their pixel data byte
for byte."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from planted import KINDS, surviving_tokens, write_corpus

from lakehouse.deid import DeidSettings, deidentify, parse_options

OPTION_SETS = {
    "basic": (),
    "clean": ("clean-descriptors", "clean-structured-content", "clean-graphics"),
    "modified-dates": ("retain-modified-dates",),
    "clean-pixels": ("clean-descriptors", "clean-structured-content", "clean-graphics", "clean-pixel-data"),
}
KEY = b"planted-phi-test-key-0123456789abcdef"
#: Token kinds an option keeps by design: whole-day date shifting leaves the time of day as it was.
RETAINED_BY_OPTION = {"retain-modified-dates": {"time"}}
CORPUS_SIZE = 2 * len(KINDS)


def expected_quarantine(kind: str, options: tuple[str, ...]) -> str | None:
    """Why an object of this kind must be quarantined under these options (None: it must publish)."""
    if kind == "us" and "clean-pixel-data" not in options:
        return "burned_in_risk"
    return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("planted")
    return folder, write_corpus(folder, CORPUS_SIZE)


def test_answer_key_covers_every_planting_site(corpus: tuple[Path, dict[str, dict]]) -> None:
    _, answer = corpus
    wheres = " ".join(info["where"] for entry in answer.values() for info in entry["tokens"].values())
    for site in (
        "PatientName",
        "OtherPatientIDsSequence",
        "RequestAttributesSequence",
        "ReferencedPatientSequence",
        "ProcedureCodeSequence",
        "ImageComments",
        "StudyComments",
        "PatientComments",
        "DeviceSerialNumber",
        "StationName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "private LO",
        "private SQ",
        "(6000,3000)",
        "(6000,0022)",
        "(6000,1500)",
        "(5000,3000)",
        "IconImageSequence",
        "(0002,0016)",
        "(0002,0013)",
        "ContentSequence[1].ContentSequence[0].TextValue",
        "PersonName",
        "GraphicAnnotationSequence",
        "GraphicLayerDescription",
        "top.IssuerOfAccessionNumberSequence[0].LocalNamespaceEntityID",
        "RequestAttributesSequence[0].IssuerOfAccessionNumberSequence[0].UniversalEntityID",
        "ReferencedRequestSequence[0].IssuerOfAccessionNumberSequence[0].LocalNamespaceEntityID",
        "ResponsiblePerson",
        "ExpiryDate",
        "AcquisitionDateTime",
        "PatientAge",
        "SOPInstanceUID",
    ):
        assert site in wheres, site
    kinds = Counter(info["kind"] for entry in answer.values() for info in entry["tokens"].values())
    assert set(kinds) == {"name", "text", "date", "time", "datetime", "uid", "binary", "age"}


@pytest.mark.parametrize("option_set", sorted(OPTION_SETS))
def test_no_planted_token_survives(corpus: tuple[Path, dict[str, dict]], option_set: str) -> None:
    folder, answer = corpus
    options = OPTION_SETS[option_set]
    settings = DeidSettings(project="planted", key=KEY, options=parse_options(options))
    retained = set().union(*(RETAINED_BY_OPTION.get(o, set()) for o in options))
    outcomes: Counter[str] = Counter()
    leaks: dict[str, dict[str, str]] = {}
    for name, entry in sorted(answer.items()):
        source = (folder / name).read_bytes()
        result = deidentify(source, settings)
        expected = expected_quarantine(entry["kind"], options)
        report_text = json.dumps(result.report, default=str) + str(result.reason) + str(result.tag_path)
        assert not surviving_tokens(report_text.encode(), entry["tokens"]), (
            f"{name}: a token is in the report"
        )
        if result.outcome == "quarantined":
            outcomes[f"quarantined:{result.reason}"] += 1
            assert result.reason == expected, (
                f"{name}: unexplained quarantine {result.reason} {result.tag_path}"
            )
            assert result.data is None
            continue
        outcomes["deidentified"] += 1
        assert expected is None, f"{name}: should have been quarantined ({expected})"
        assert result.data is not None
        planted = {t: info for t, info in entry["tokens"].items() if info["kind"] not in retained}
        if found := surviving_tokens(result.data, planted):
            leaks[name] = found
        if entry["kind"] in ("ct", "ct_utf8"):
            assert (
                pydicom.dcmread(folder / name).PixelData == pydicom.dcmread(io.BytesIO(result.data)).PixelData
            )
    assert not leaks, f"tokens survived under {option_set}: {json.dumps(leaks, indent=1)}"
    assert outcomes["deidentified"] >= CORPUS_SIZE * 3 // 4, outcomes
