"""Retain Safe Private (PS3.15 E.3.10) on generated private blocks: Table E.3.10-1 rows and
blocks declared SAFE or MIXED in Private Data Element Characteristics Sequence stay with the
Private Creators they need; everything else private goes; UIDs are replaced consistently."""

from __future__ import annotations

import io

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian
from test_engine import KEY, SERIES_UID, make_ct, to_bytes

from lakehouse.deid import DeidResult, DeidSettings, deidentify, parse_options, pseudonymize_uid
from lakehouse.deid.safe_private import safe_table

SAFE = DeidSettings(project="p", key=KEY, options=parse_options(["retain-safe-private"]))


def _block(group: int, creator: str, status: str, elements: list[int] | None = None) -> Dataset:
    item = Dataset()
    item.PrivateGroupReference = group
    item.PrivateCreatorReference = creator
    item.BlockIdentifyingInformationStatus = status
    if elements is not None:
        item.NonidentifyingPrivateElements = elements
    return item


def with_private_blocks(**overrides: object) -> Dataset:
    ds = make_ct(**overrides)
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")  # Table E.3.10-1: (0019,xx23) DS Table Speed
    ds.add_new(0x00191023, "DS", "1.375")
    ds.add_new(0x00191050, "LO", "PRIVNOTLISTED")
    ds.add_new(0x00990020, "LO", "NQHeader")  # Table E.3.10-1: (0099,xx02) UI Analyzed Series UID
    ds.add_new(0x00992002, "UI", SERIES_UID)
    ds.add_new(0x00290011, "LO", "ACME SAFE 1")  # declared SAFE below
    ds.add_new(0x00291101, "FD", 2.5)
    ds.add_new(0x00291102, "PN", "Zyxwvut^Qwertina")  # a person name is never kept
    ds.add_new(0x00310010, "LO", "ACME MIXED")  # declared MIXED, element 01 nonidentifying
    ds.add_new(0x00311001, "US", 7)
    ds.add_new(0x00311002, "SH", "MIXTOKEN")
    ds.add_new(0x00330010, "LO", "ACME UNSAFE")
    ds.add_new(0x00331001, "US", 9)
    ds.PrivateDataElementCharacteristicsSequence = Sequence([
        _block(0x0029, "ACME SAFE 1", "SAFE"), _block(0x0031, "ACME MIXED", "MIXED", [0x01]),
        _block(0x0033, "ACME UNSAFE", "UNSAFE"),
    ])
    return ds


def _private(result: DeidResult) -> dict[int, object]:
    assert result.outcome == "deidentified", (result.reason, result.tag_path)
    assert result.data is not None
    out = pydicom.dcmread(io.BytesIO(result.data))
    return {int(e.tag): e.value for e in out if e.tag.group & 1}


def test_the_option_is_accepted_and_recorded() -> None:
    result = deidentify(to_bytes(with_private_blocks()), SAFE)
    assert result.data is not None
    out = pydicom.dcmread(io.BytesIO(result.data))
    assert "113111" in [item.CodeValue for item in out.DeidentificationMethodCodeSequence]


def test_safe_attributes_stay_with_their_private_creators_and_the_rest_goes() -> None:
    kept = _private(deidentify(to_bytes(with_private_blocks()), SAFE))
    assert kept == {
        0x00190010: "GEMS_ACQU_01", 0x00191023: "1.375",
        0x00290011: "ACME SAFE 1", 0x00291101: 2.5,
        0x00310010: "ACME MIXED", 0x00311001: 7,
        0x00990020: "NQHeader", 0x00992002: pseudonymize_uid(SERIES_UID, KEY),
    }


def test_without_the_option_every_private_attribute_goes() -> None:
    plain = DeidSettings(project="p", key=KEY)
    assert _private(deidentify(to_bytes(with_private_blocks()), plain)) == {}


def test_a_table_row_needs_its_private_creator_and_vr() -> None:
    ds = with_private_blocks()
    ds[0x00190010].value = "OTHER VENDOR"  # same element number, another creator: not the table's
    ds.add_new(0x00450010, "LO", "GEMS_HELIOS_01")
    ds.add_new(0x00451002, "LO", "12.5")  # the table says FL
    kept = _private(deidentify(to_bytes(ds), SAFE))
    assert 0x00191023 not in kept and 0x00190010 not in kept
    assert 0x00451002 not in kept and 0x00450010 not in kept


def test_implicit_vr_private_uids_from_the_table_are_read_and_replaced() -> None:
    ds = with_private_blocks()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    # Without its VR the name in the SAFE block is unknown bytes: kept, so the scan finds it.
    assert deidentify(to_bytes(ds), SAFE).tag_path == "(0029,1102)"
    del ds[0x00291102]
    kept = _private(deidentify(to_bytes(ds), SAFE))
    # Written implicit again, the UID reads back as bytes (pydicom's private dictionary knows
    # the GE element's VR, DS, not NQHeader's).
    assert kept[0x00992002] == pseudonymize_uid(SERIES_UID, KEY).encode()
    assert kept[0x00191023] == "1.375"


def test_identifiers_in_kept_private_values_still_quarantine() -> None:
    ds = with_private_blocks()
    ds.add_new(0x00291103, "OB", b"header of Zyxwvut " * 2)  # in the SAFE block, binary
    result = deidentify(to_bytes(ds), SAFE)
    assert (result.outcome, result.reason, result.tag_path) == ("quarantined", "residual_phi", "(0029,1103)")
    ds = with_private_blocks()
    ds.add_new(0x00291104, "LO", "for PIDTOKEN7781")
    assert deidentify(to_bytes(ds), SAFE).reason == "residual_phi"


def test_the_vendored_table_has_every_row_of_the_standard_sample() -> None:
    rows = safe_table().rows
    assert len(rows) == 130
    assert rows[(0x7053, "Philips PET Private Group", 0x00)] == "DS"
    assert rows[(0x0199, "NQLeft", 0x0A)] == "FL"
    assert rows[(0x0119, "SIEMENS Ultrasound SC2000", 0x11)] == ""
