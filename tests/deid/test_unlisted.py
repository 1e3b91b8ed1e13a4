"""Attributes PS3.15 Table E.1-1 does not list, at any depth: kept only by VR or allowlist,
else removed, emptied or dummied where the module needs them, or cleaned under a clean option
(``schemas/deid/unlisted_attributes.json``); Type 2 attributes emptied, not removed."""

from __future__ import annotations

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from test_engine import make_ct, out, run

from lakehouse import resources
from lakehouse.deid.profile import resolved_profile
from lakehouse.deid.unlisted import UnlistedActions, unlisted_policy

ISSUER_NAME = "Qwertyville General"  # an issuer's name: identifies the site


def _issuer() -> Sequence:
    item = Dataset()
    item.LocalNamespaceEntityID = ISSUER_NAME
    item.UniversalEntityID = "2.16.840.1.999999.42"
    item.UniversalEntityIDType = "ISO"
    return Sequence([item])


def test_issuer_names_at_every_depth_are_replaced_and_the_object_published() -> None:
    ds = make_ct()
    ds.IssuerOfAccessionNumberSequence = _issuer()
    ds.RequestAttributesSequence[0].IssuerOfAccessionNumberSequence = _issuer()
    request = Dataset()
    request.AccessionNumber = "ACCTOKEN5521"
    request.IssuerOfAccessionNumberSequence = _issuer()
    ds.ReferencedRequestSequence = Sequence([request])
    for options in ((), ("clean-descriptors",)):
        result = run(ds, *options)
        published = out(result)
        assert ISSUER_NAME.encode() not in result.data and b"999999" not in result.data
        issuers = [published.IssuerOfAccessionNumberSequence[0],
                   published.ReferencedRequestSequence[0].IssuerOfAccessionNumberSequence[0]]
        if options:  # Request Attributes Sequence is kept (C) under Clean Descriptors
            issuers.append(published.RequestAttributesSequence[0].IssuerOfAccessionNumberSequence[0])
        for issuer in issuers:  # Type 1C pair: a dummy each, so the item stays valid
            assert issuer.UniversalEntityIDType == "ISO"
            assert issuer.UniversalEntityID == "ANONYMIZED"
            assert issuer.LocalNamespaceEntityID in ("ANONYMIZED", "General")  # cleaned keeps vocabulary only


def test_text_by_vr_and_allowlist() -> None:
    ds = make_ct()
    ds.ImageID = "IMGTOK"  # SH, not allowlisted: removed
    ds.ConvolutionKernel = "B30f"  # allowlisted technique
    ds.ScanOptions = "HELICAL_CT"  # CS: kept by VR
    ds.ExposureTime = 500  # IS
    ds.add_new(0x00141020, "DA", "20200110")  # Expiry Date: an unlisted date
    ds.add_new(0x0008010C, "UI", "2.16.840.1.113883.6.96")  # Coding Scheme UID: allowlisted registry UID
    ds.add_new(0x00880140, "UI", "1.2.826.0.1.3680043.8.498.99")  # Storage Media File-set UID: replaced
    published = out(run(ds))
    assert "ImageID" not in published
    assert published.ConvolutionKernel == "B30f" and published.ScanOptions == "HELICAL_CT"
    assert published.ExposureTime == 500 and published.Manufacturer == "ACME"
    assert published[0x00141020].value in ("", None)  # emptied without a date option
    assert published[0x0008010C].value == "2.16.840.1.113883.6.96"
    assert published[0x00880140].value.startswith("2.25.")
    shifted = out(run(ds, "retain-modified-dates"))
    assert shifted[0x00141020].value not in ("", None, "20200110")
    kept = out(run(ds, "retain-full-dates"))
    assert kept[0x00141020].value == "20200110"


def test_clean_descriptors_cleans_unlisted_text_instead_of_removing_it() -> None:
    ds = make_ct()
    ds.ImageID = "AXIAL Zyxwvut"  # the patient's name goes, vocabulary stays
    assert out(run(ds, "clean-descriptors")).ImageID == "AXIAL"
    ds.ImageID = "Zyxwvut"
    assert "ImageID" not in out(run(ds, "clean-descriptors"))  # nothing left: removed (its fallback)


def test_conditional_attribute_goes_with_what_it_depends_on() -> None:
    ds = make_ct()
    ds.ResponsiblePerson = "Guardian^Tok"
    ds.ResponsiblePersonRole = "PARENT"  # Type 1C: required if Responsible Person is present
    published = out(run(ds))  # Responsible Person is Type 2C (animals): emptied, so its role goes
    assert published.ResponsiblePerson == "" and "ResponsiblePersonRole" not in published


def test_type_2_attributes_are_emptied_not_removed() -> None:
    ds = make_ct()
    ds.OperatorsName = "Opname^Tok"
    ds.ReferencedPerformedProcedureStepSequence = Sequence([Dataset()])
    request = Dataset()
    request.RequestedProcedureID = "REQTOK88"
    request.RequestedProcedureDescription = "CT for Zyxwvut"
    ds.ReferencedRequestSequence = Sequence([request])
    published = out(run(ds))
    assert published.OperatorsName == ""
    assert len(published.ReferencedPerformedProcedureStepSequence) == 1  # kept, its UIDs replaced
    item = published.ReferencedRequestSequence[0]
    assert item.RequestedProcedureDescription == ""
    # Type 1C in request items elsewhere: a keyed token, never the source value, never empty
    assert item.RequestedProcedureID not in ("", "REQTOK88") and len(item.RequestedProcedureID) == 16
    basic = resolved_profile(frozenset())
    assert basic.actions[tag_for_keyword("RequestedProcedureID")] == "Z"


def test_presentation_state_text_is_removed_or_cleaned_not_quarantined() -> None:
    ds = make_ct()
    ds.GraphicLayerSequence = Sequence([Dataset()])
    layer = ds.GraphicLayerSequence[0]
    layer.GraphicLayer, layer.GraphicLayerOrder = "MEASURE", 1
    layer.GraphicLayerDescription = "lesion for Zyxwvut Qwertina"  # the patient's name, as in the issue
    text = Dataset()
    text.UnformattedTextValue = "Qwertina 12 mm"
    text.AnchorPointAnnotationUnits = "PIXEL"
    annotation = Dataset()
    annotation.GraphicLayer = "MEASURE"
    annotation.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    ds.ContentDescription = "PR by Zyxwvut"
    basic = out(run(ds))
    assert "GraphicLayerDescription" not in basic.GraphicLayerSequence[0]  # Type 3: removed
    assert basic.ContentDescription == ""  # Type 2: emptied
    cleaned = out(run(ds, "clean-graphics", "clean-descriptors"))
    assert cleaned.GraphicLayerSequence[0].GraphicLayerDescription == "lesion for"
    assert cleaned.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == "12 mm"


def test_policy_file_is_checked_and_documented() -> None:
    policy = unlisted_policy()
    data = resources.read_json("deid", "unlisted_attributes.json")
    assert set(policy.vr_class) >= {"LO", "SH", "UT", "PN", "UI", "DA", "CS", "SQ", "OB"}
    assert "deid/unlisted_attributes.json" in resources.read_text("README.md")
    assert all(row["why"] for row in data["required"].values())
    actions = UnlistedActions(frozenset(), dates_removed=True)
    assert actions.action(tag_for_keyword("LocalNamespaceEntityID"), "UT") == ("D", "D")
    assert actions.action(tag_for_keyword("ImageID"), "SH") == ("X", "X")
    assert actions.action(0x7FE00010, "OB or OW") == (None, "X")
    assert actions.action(0x00280106, "US or SS") == (None, "X")


@pytest.mark.parametrize("keyword", ["PatientName", "StudyDescription", "AccessionNumber"])
def test_listed_attributes_are_not_in_the_allowlist(keyword: str) -> None:
    assert tag_for_keyword(keyword) not in unlisted_policy().allowlist
