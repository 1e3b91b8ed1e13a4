"""Planted-PHI corpus: DICOM files whose every identifying value is a unique token, with an answer key.

Each token is findable in raw bytes: text tokens are ``PHI`` + 8 upper-case hex digits (PN
components, LO/SH/ST/LT/UT values, AE titles, code meanings, bytes inside OB/OW overlay,
curve, icon and private data); dates are unique real dates (spaced 12 years apart within an
object, so a whole-day shift of up to 10 years can never turn one into another); times carry
a unique 6-digit fraction; UIDs are unique. The answer key maps token → where it was
planted (tag path) and its kind.

Attributes Table E.1-1 does not list carry tokens too: Issuer of Accession Number Sequence at
the top level, in Request Attributes Sequence and (SR) Referenced Request Sequence items,
Graphic Layer Description, Responsible Person (with its Role), Image ID and Expiry Date.

Kinds of object (cycled): ``ct`` (no burned-in risk, pixel data must pass byte for byte),
``ct_utf8`` (Specific Character Set ISO_IR 192), ``sr`` (Comprehensive SR with TEXT, PNAME,
DATE, UIDREF, CODE items in nested containers) and ``us`` (Burned In Annotation YES: only
publishable with the Clean Pixel Data option).

Run as a script to write a corpus: ``python tests/deid/planted.py OUT_DIR --n 8``.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

KINDS = ("ct", "ct_utf8", "sr", "us")
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
PRIVATE_CREATOR = "LAKEHOUSE PLANTED"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root: the corpus is test data


@dataclass
class Planter:
    """Makes unique tokens from one seeded generator and records each in the answer key."""

    rng: random.Random
    key: dict[str, dict[str, str]] = field(default_factory=dict)
    _next_year: int = 0

    def _record(self, token: str, where: str, kind: str) -> str:
        assert token not in self.key, "tokens are unique"
        self.key[token] = {"where": where, "kind": kind}
        return token

    def text(self, where: str, kind: str = "text") -> str:
        return self._record(f"PHI{self.rng.getrandbits(32):08X}", where, kind)

    def pn(self, where: str) -> str:
        return "^".join(self.text(f"{where}[{part}]", "name") for part in ("family", "given", "middle"))

    def date(self, where: str) -> str:
        year = self._next_year
        self._next_year += 12
        day = date(year, 1, 1) + timedelta(days=self.rng.randrange(365))
        return self._record(day.strftime("%Y%m%d"), where, "date")

    def time(self, where: str) -> str:
        hhmmss = f"{self.rng.randrange(24):02d}{self.rng.randrange(60):02d}{self.rng.randrange(60):02d}"
        return self._record(f"{hhmmss}.{self.rng.randrange(10**5, 10**6)}", where, "time")

    def datetime(self, where: str) -> str:
        day = self.date(where + "#date")
        clock = f"{self.rng.randrange(24):02d}{self.rng.randrange(60):02d}{self.rng.randrange(60):02d}"
        return self._record(f"{day}{clock}.{self.rng.randrange(10**5, 10**6)}", where, "datetime")

    def uid(self, where: str) -> str:
        return self._record(UID_ROOT + str(self.rng.getrandbits(96)), where, "uid")

    def blob(self, where: str, size: int) -> bytes:
        """Binary data (overlay, curve, icon, private OB) with a token written into it."""
        token = self.text(where, "binary").encode()
        data = bytearray(self.rng.randbytes(size))
        data[8 : 8 + len(token)] = token
        return bytes(data)


def _item(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _patient_and_study(ds: Dataset, p: Planter) -> None:
    for keyword in (
        "PatientName",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "RequestingPhysician",
        "PatientBirthName",
        "PatientMotherBirthName",
        "OtherPatientNames",
    ):
        setattr(ds, keyword, p.pn(keyword))
    for keyword in (
        "PatientID",
        "IssuerOfPatientID",
        "AccessionNumber",
        "AdmissionID",
        "MedicalRecordLocator",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "MilitaryRank",
        "EthnicGroup",
        "Occupation",
        "StudyDescription",
        "SeriesDescription",
        "ProtocolName",
        "PerformedProcedureStepDescription",
        "RequestedProcedureDescription",
        "AdmittingDiagnosesDescription",
        "ImageComments",
        "StudyComments",
        "PatientComments",
        "AdditionalPatientHistory",
        "DerivationDescription",
        "DeviceSerialNumber",
        "StationName",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "PerformedProcedureStepID",
        "RequestedProcedureID",
    ):
        setattr(ds, keyword, p.text(keyword))
    ds.OtherPatientIDs = p.text("OtherPatientIDs")
    ds.StudyID = p.text("StudyID")
    ds.PatientAge = p._record(f"{p.rng.randrange(90, 100):03d}Y", "PatientAge", "age")
    ds.PatientSex = "O"
    for keyword in (
        "PatientBirthDate",
        "StudyDate",
        "SeriesDate",
        "AcquisitionDate",
        "ContentDate",
        "InstanceCreationDate",
        "PerformedProcedureStepStartDate",
    ):
        setattr(ds, keyword, p.date(keyword))
    for keyword in (
        "PatientBirthTime",
        "StudyTime",
        "SeriesTime",
        "AcquisitionTime",
        "ContentTime",
        "InstanceCreationTime",
        "PerformedProcedureStepStartTime",
    ):
        setattr(ds, keyword, p.time(keyword))
    ds.AcquisitionDateTime = p.datetime("AcquisitionDateTime")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "DeviceUID"):
        setattr(ds, keyword, p.uid(keyword))
    ds.OtherPatientIDsSequence = Sequence(
        [
            _item(
                PatientID=p.text("OtherPatientIDsSequence[0].PatientID"),
                IssuerOfPatientID=p.text("OtherPatientIDsSequence[0].IssuerOfPatientID"),
                TypeOfPatientID="TEXT",
            ),
        ]
    )
    ds.RequestAttributesSequence = Sequence(
        [
            _item(
                RequestedProcedureID=p.text("RequestAttributesSequence[0].RequestedProcedureID"),
                ScheduledProcedureStepID=p.text("RequestAttributesSequence[0].ScheduledProcedureStepID"),
                ScheduledProcedureStepDescription=p.text(
                    "RequestAttributesSequence[0].ScheduledProcedureStepDescription"
                ),
                AccessionNumber=p.text("RequestAttributesSequence[0].AccessionNumber"),
                ReasonForTheRequestedProcedure=p.text(
                    "RequestAttributesSequence[0].ReasonForTheRequestedProcedure"
                ),
            ),
        ]
    )
    ds.ReferencedPatientSequence = Sequence(
        [
            _item(
                ReferencedSOPClassUID="1.2.840.10008.3.1.2.1.4",
                ReferencedSOPInstanceUID=p.uid("ReferencedPatientSequence[0].ReferencedSOPInstanceUID"),
            ),
        ]
    )
    ds.ReferencedStudySequence = Sequence(
        [
            _item(
                ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                ReferencedSOPInstanceUID=p.uid("ReferencedStudySequence[0].ReferencedSOPInstanceUID"),
            ),
        ]
    )
    ds.ProcedureCodeSequence = Sequence(
        [
            _item(
                CodeValue="PLANTED",
                CodingSchemeDesignator="99LH",
                CodeMeaning=p.text("ProcedureCodeSequence[0].CodeMeaning"),
            ),
        ]
    )


def _issuer(p: Planter, where: str) -> Sequence:
    """An HL7v2 hierarchic designator (PS3.3 Table 10-17): attributes Table E.1-1 does not list."""
    return Sequence(
        [
            _item(
                LocalNamespaceEntityID=p.text(f"{where}.IssuerOfAccessionNumberSequence[0].LocalNamespaceEntityID"),
                UniversalEntityID=p.text(f"{where}.IssuerOfAccessionNumberSequence[0].UniversalEntityID"),
                UniversalEntityIDType="ISO",
            )
        ]
    )


def _unlisted(ds: Dataset, p: Planter) -> None:
    """Identifying values in attributes outside Table E.1-1, at the top level and nested."""
    ds.IssuerOfAccessionNumberSequence = _issuer(p, "top")
    ds.RequestAttributesSequence[0].IssuerOfAccessionNumberSequence = _issuer(p, "RequestAttributesSequence[0]")
    ds.ResponsiblePerson = p.pn("ResponsiblePerson")
    ds.ResponsiblePersonRole = "PARENT"
    ds.ImageID = p.text("ImageID")
    ds.add_new(0x00141020, "DA", p.date("ExpiryDate"))


def _private(ds: Dataset, p: Planter) -> None:
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", p.text("(0011,1010) private LO"))
    block.add_new(0x11, "PN", p.pn("(0011,1011) private PN"))
    block.add_new(0x12, "OB", p.blob("(0011,1012) private OB", 64))
    nested = Dataset()
    inner = nested.private_block(0x0013, PRIVATE_CREATOR, create=True)
    inner.add_new(0x10, "LO", p.text("(0011,1013)[0] (0013,1010) private LO in private SQ"))
    nested.PatientName = p.pn("(0011,1013)[0] PatientName in private SQ")
    block.add_new(0x13, "SQ", Sequence([nested]))
    ds.add_new(0x00191001, "LO", p.text("(0019,1001) private LO without a creator"))


def _graphics(ds: Dataset, p: Planter, rows: int, columns: int) -> None:
    for group in (0x6000, 0x6002):
        ds.add_new((group << 16) | 0x0010, "US", rows)
        ds.add_new((group << 16) | 0x0011, "US", columns)
        ds.add_new((group << 16) | 0x0040, "CS", "G")
        ds.add_new((group << 16) | 0x0050, "SS", [1, 1])
        ds.add_new((group << 16) | 0x0100, "US", 1)
        ds.add_new((group << 16) | 0x0102, "US", 0)
        ds.add_new((group << 16) | 0x0022, "LO", p.text(f"({group:04X},0022) OverlayDescription"))
        ds.add_new((group << 16) | 0x1500, "LO", p.text(f"({group:04X},1500) OverlayLabel"))
        ds.add_new(
            (group << 16) | 0x3000, "OW", p.blob(f"({group:04X},3000) OverlayData", rows * columns // 8)
        )
    ds.add_new(0x50000005, "US", 1)  # curve dimensions
    ds.add_new(0x50000010, "US", 16)  # number of points
    ds.add_new(0x50000022, "LO", p.text("(5000,0022) CurveDescription"))
    ds.add_new(0x50002500, "LO", p.text("(5000,2500) CurveLabel"))
    ds.add_new(0x50003000, "OW", p.blob("(5000,3000) CurveData", 64))
    ds.GraphicLayerSequence = Sequence(
        [
            _item(
                GraphicLayer="PLANTED",
                GraphicLayerOrder=1,
                GraphicLayerDescription=p.text("GraphicLayerSequence[0].GraphicLayerDescription"),
            )
        ]
    )
    ds.GraphicAnnotationSequence = Sequence(
        [
            _item(
                GraphicLayer="PLANTED",
                TextObjectSequence=Sequence(
                    [
                        _item(
                            UnformattedTextValue=p.text(
                                "GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue"
                            ),
                            AnchorPointAnnotationUnits="PIXEL",
                            AnchorPoint=[1.0, 1.0],
                            AnchorPointVisibility="N",
                        )
                    ]
                ),
            )
        ]
    )
    icon = _item(
        Rows=8,
        Columns=8,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelRepresentation=0,
    )
    icon.PixelData = p.blob("IconImageSequence[0].PixelData", 64)
    ds.IconImageSequence = Sequence([icon])


def _image(ds: Dataset, p: Planter, kind: str, size: int) -> None:
    rows = columns = size
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if kind == "us":
        ds.SOPClassUID, ds.Modality, ds.BurnedInAnnotation = US_IMAGE, "US", "YES"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.frombuffer(p.rng.randbytes(rows * columns), dtype=np.uint8).tobytes()
    else:
        ds.SOPClassUID, ds.Modality = CT_IMAGE, "CT"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (
            np.frombuffer(p.rng.randbytes(rows * columns * 2), dtype=np.uint16) & 0x0FFF
        ).tobytes()
    ds.ReferencedImageSequence = Sequence(
        [
            _item(
                ReferencedSOPClassUID=ds.SOPClassUID,
                ReferencedSOPInstanceUID=p.uid("ReferencedImageSequence[0].ReferencedSOPInstanceUID"),
            )
        ]
    )
    _graphics(ds, p, rows, columns)


def _code(value: str, meaning: str) -> Sequence:
    return Sequence([_item(CodeValue=value, CodingSchemeDesignator="DCM", CodeMeaning=meaning)])


def _structured_report(ds: Dataset, p: Planter) -> None:
    ds.SOPClassUID, ds.Modality = COMPREHENSIVE_SR, "SR"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    ds.VerifyingObserverSequence = Sequence(
        [
            _item(
                VerifyingObserverName=p.pn("VerifyingObserverSequence[0].VerifyingObserverName"),
                VerifyingOrganization=p.text("VerifyingObserverSequence[0].VerifyingOrganization"),
                VerificationDateTime=p.datetime("VerifyingObserverSequence[0].VerificationDateTime"),
                VerifyingObserverIdentificationCodeSequence=Sequence(),
            )
        ]
    )
    leaf = [
        _item(
            RelationshipType="CONTAINS",
            ValueType="TEXT",
            ConceptNameCodeSequence=_code("121071", "Finding"),
            TextValue=p.text("ContentSequence[1].ContentSequence[0].TextValue"),
        ),
        _item(
            RelationshipType="CONTAINS",
            ValueType="PNAME",
            ConceptNameCodeSequence=_code("121008", "Person Observer Name"),
            PersonName=p.pn("ContentSequence[1].ContentSequence[1].PersonName"),
        ),
        _item(
            RelationshipType="CONTAINS",
            ValueType="DATE",
            ConceptNameCodeSequence=_code("111060", "Study Date"),
            Date=p.date("ContentSequence[1].ContentSequence[2].Date"),
        ),
        _item(
            RelationshipType="CONTAINS",
            ValueType="UIDREF",
            ConceptNameCodeSequence=_code("121018", "Procedure Study Instance UID"),
            UID=p.uid("ContentSequence[1].ContentSequence[3].UID"),
        ),
        _item(
            RelationshipType="CONTAINS",
            ValueType="CODE",
            ConceptNameCodeSequence=_code("121071", "Finding"),
            ConceptCodeSequence=Sequence(
                [
                    _item(
                        CodeValue="PLANTED",
                        CodingSchemeDesignator="99LH",
                        CodeMeaning=p.text("ContentSequence[1].ContentSequence[4] CodeMeaning"),
                    )
                ]
            ),
        ),
    ]
    ds.ReferencedRequestSequence = Sequence(
        [
            _item(
                StudyInstanceUID=p.uid("ReferencedRequestSequence[0].StudyInstanceUID"),
                AccessionNumber=p.text("ReferencedRequestSequence[0].AccessionNumber"),
                IssuerOfAccessionNumberSequence=_issuer(p, "ReferencedRequestSequence[0]"),
                RequestedProcedureID=p.text("ReferencedRequestSequence[0].RequestedProcedureID"),
                RequestedProcedureDescription=p.text("ReferencedRequestSequence[0].RequestedProcedureDescription"),
                RequestedProcedureCodeSequence=Sequence(),
                PlacerOrderNumberImagingServiceRequest=p.text("ReferencedRequestSequence[0].PlacerOrderNumber"),
                FillerOrderNumberImagingServiceRequest=p.text("ReferencedRequestSequence[0].FillerOrderNumber"),
            )
        ]
    )
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = _code("126000", "Imaging Measurement Report")
    ds.ContentSequence = Sequence(
        [
            _item(
                RelationshipType="HAS OBS CONTEXT",
                ValueType="PNAME",
                ConceptNameCodeSequence=_code("121008", "Person Observer Name"),
                PersonName=p.pn("ContentSequence[0].PersonName"),
            ),
            _item(
                RelationshipType="CONTAINS",
                ValueType="CONTAINER",
                ContinuityOfContent="SEPARATE",
                ConceptNameCodeSequence=_code("121070", "Findings"),
                ObservationDateTime=p.datetime("ContentSequence[1].ObservationDateTime"),
                ContentSequence=Sequence(leaf),
            ),
        ]
    )


def planted_dataset(index: int, seed: int = 4, size: int = 32) -> tuple[Dataset, dict[str, dict[str, str]]]:
    """Object number ``index`` of the corpus (images ``size`` × ``size``) and its answer key
    (token → where, kind)."""
    kind = KINDS[index % len(KINDS)]
    rng = random.Random(f"planted-{seed}-{index}")
    p = Planter(rng, _next_year=1873 + rng.randrange(5))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = UID_ROOT + "4.4"
    ds.file_meta.ImplementationVersionName = p.text("(0002,0013) ImplementationVersionName")
    ds.file_meta.SourceApplicationEntityTitle = p.text("(0002,0016) SourceApplicationEntityTitle")
    ds.file_meta.SendingApplicationEntityTitle = p.text("(0002,0017) SendingApplicationEntityTitle")
    ds.file_meta.ReceivingApplicationEntityTitle = p.text("(0002,0018) ReceivingApplicationEntityTitle")
    ds.file_meta.PrivateInformationCreatorUID = p.uid("(0002,0100) PrivateInformationCreatorUID")
    ds.file_meta.PrivateInformation = p.blob("(0002,0102) PrivateInformation", 32)
    ds.SpecificCharacterSet = "ISO_IR 192" if kind == "ct_utf8" else "ISO_IR 100"
    _patient_and_study(ds, p)
    ds.SOPInstanceUID = p.uid("SOPInstanceUID")
    ds.Manufacturer, ds.ManufacturerModelName = "Lakehouse Planted", "Corpus"
    ds.SeriesNumber, ds.InstanceNumber = 1, index + 1
    if kind == "sr":
        _structured_report(ds, p)
    else:
        _image(ds, p, kind, size)
    _unlisted(ds, p)
    _private(ds, p)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds, p.key


def write_corpus(out_dir: Path, n: int, seed: int = 4, size: int = 32) -> dict[str, dict]:
    """Write ``n`` planted files into ``out_dir``; returns and writes ``answer_key.json``:
    {file name: {"kind": kind, "tokens": {token: {"where", "kind"}}}}. Every token is checked to
    be present in the written bytes, so the key is true of the input."""
    out_dir.mkdir(parents=True, exist_ok=True)
    answer: dict[str, dict] = {}
    for index in range(n):
        ds, key = planted_dataset(index, seed, size)
        name = f"planted_{index:04d}_{KINDS[index % len(KINDS)]}.dcm"
        ds.save_as(out_dir / name, enforce_file_format=True)
        data = (out_dir / name).read_bytes()
        missing = [where["where"] for token, where in key.items() if token.encode() not in data]
        if missing:
            raise AssertionError(f"planted tokens not in the written file {name}: {missing}")
        answer[name] = {"kind": KINDS[index % len(KINDS)], "tokens": key}
    (out_dir / "answer_key.json").write_text(json.dumps(answer, indent=1, sort_keys=True))
    return answer


def token_forms(token: str) -> list[bytes]:
    """Byte forms a surviving token could take in an output: as written, lower case, UTF-16."""
    return [token.encode(), token.lower().encode(), token.encode("utf-16-le"), token.encode("utf-16-be")]


def surviving_tokens(data: bytes, tokens: dict[str, dict[str, str]]) -> dict[str, str]:
    """Tokens of the answer key found anywhere in ``data`` → where they had been planted."""
    return {t: info["where"] for t, info in tokens.items() if any(form in data for form in token_forms(t))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n", type=int, default=len(KINDS))
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--size", type=int, default=32, help="image rows and columns")
    args = parser.parse_args()
    answer = write_corpus(args.out_dir, args.n, args.seed, args.size)
    print(f"{len(answer)} files, {sum(len(a['tokens']) for a in answer.values())} tokens → {args.out_dir}")


if __name__ == "__main__":
    main()
