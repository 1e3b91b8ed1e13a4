"""Builders for each synthetic SOP class. Each returns a complete, valid FileDataset.

SOP Class UIDs and codes are from the DICOM standard (PS3.4 Annex B, PS3.16
DCM and LOINC codes as used by TID 2000 / TID 2010).
"""

from __future__ import annotations

import random
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from lakehouse.synth.modules import (
    Study,
    add_equipment,
    add_image_pixel,
    add_patient,
    add_plane,
    add_private_block,
    add_series,
    add_sop_common,
    add_study,
    code,
    later,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"


def _base(
    s: Study, sop_class: str, sop_uid: str, syntax: str, rng: random.Random, charset: str = "ISO_IR 100"
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.SourceApplicationEntityTitle = "LAKEHOUSE_SYNTH"
    add_sop_common(ds, sop_class, sop_uid, s.when, charset)
    add_patient(ds, s.patient, s.when.date())
    add_study(ds, s)
    add_private_block(ds, s, rng)
    return ds


def _phantom(size: int, index: int, np_rng: np.random.Generator) -> np.ndarray:
    """A round body with a brighter organ and noise, in HU-like int16."""
    y, x = np.mgrid[0:size, 0:size]
    r = np.hypot(x - size / 2, y - size / 2) / (size / 2)
    image = np.where(r < 0.85, 40, -1000).astype(np.int16)
    organ = np.hypot(x - size * (0.4 + 0.02 * index), y - size * 0.45) < size * 0.12
    image[organ] = 180
    image += np_rng.normal(0, 12, (size, size)).astype(np.int16)
    return image


def ct_slice(
    s: Study,
    series_uid: str,
    sop_uid: str,
    index: int,
    size: int,
    rng: random.Random,
    np_rng: np.random.Generator,
) -> Dataset:
    ds = _base(s, CT_IMAGE, sop_uid, ExplicitVRLittleEndian, rng)
    add_series(ds, s, "CT", series_uid, 2, f"{s.body_part} 3mm", later(s.when, 2))
    add_equipment(ds, s.site, "SYNTHETIC MEDICAL", "Tomo 128", rng)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber = index + 1
    add_plane(ds, index, round(350.0 / size, 4), 3.0)
    ds.KVP = "120"
    ds.XRayTubeCurrent = rng.randrange(150, 400)
    ds.ExposureTime = 1000
    ds.Exposure = rng.randrange(100, 300)
    ds.ConvolutionKernel = "B30f"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = "350"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.CTDIvol = round(rng.uniform(5, 15), 2)
    ds.ContrastBolusAgent = "Iohexol"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    add_image_pixel(ds, size, size, samples=1, bits=16, signed=True)
    ds.PixelData = _phantom(size, index, np_rng).tobytes()
    return ds


def mr_slice(
    s: Study, series_uid: str, sop_uid: str, index: int, rng: random.Random, np_rng: np.random.Generator
) -> Dataset:
    ds = _base(s, MR_IMAGE, sop_uid, ImplicitVRLittleEndian, rng)
    add_series(ds, s, "MR", series_uid, 3, "T2 TSE AX", later(s.when, 5))
    add_equipment(ds, s.site, "SYNTHETIC MEDICAL", "Magnus 3T", rng)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.InstanceNumber = index + 1
    add_plane(ds, index, 3.5, 5.0)
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "SK"
    ds.ScanOptions = "PFP"
    ds.MRAcquisitionType = "2D"
    ds.RepetitionTime = "4000"
    ds.EchoTime = "95"
    ds.EchoTrainLength = 15
    ds.MagneticFieldStrength = "3"
    ds.ImagingFrequency = "123.2"
    ds.ImagedNucleus = "1H"
    ds.NumberOfAverages = "2"
    ds.ReceiveCoilName = "Head 32"
    ds.FlipAngle = "150"
    ds.BurnedInAnnotation = "NO"
    add_image_pixel(ds, 64, 64, samples=1, bits=16, signed=False)
    ds.PixelData = np_rng.integers(0, 2000, (64, 64), dtype=np.uint16).tobytes()
    return ds


def cr_image(
    s: Study, series_uid: str, sop_uid: str, rng: random.Random, np_rng: np.random.Generator
) -> Dataset:
    """A chest radiograph, RLE Lossless compressed (pydicom encodes RLE natively)."""
    ds = _base(s, CR_IMAGE, sop_uid, ExplicitVRLittleEndian, rng)
    add_series(ds, s, "CR", series_uid, 1, "Chest PA", later(s.when, 1))
    add_equipment(ds, s.site, "SYNTHETIC MEDICAL", "Radix CR", rng)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = 1
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.KVP = "110"
    ds.ExposureTime = 20
    ds.DistanceSourceToDetector = "1800"
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.PixelSpacing = [0.2, 0.2]
    ds.PlateID = f"PL{rng.randrange(1000, 9999)}"
    ds.BurnedInAnnotation = "NO"
    add_image_pixel(ds, 96, 80, samples=1, bits=16, signed=False)
    ds.PixelData = np_rng.integers(0, 4000, (96, 80), dtype=np.uint16).tobytes()
    ds.compress(RLELossless, generate_instance_uid=False)
    return ds


def us_cine(
    s: Study, series_uid: str, sop_uid: str, rng: random.Random, np_rng: np.random.Generator
) -> Dataset:
    """An ultrasound RGB cine whose frames carry burned-in text (BurnedInAnnotation YES)."""
    ds = _base(s, US_MULTIFRAME, sop_uid, ExplicitVRLittleEndian, rng)
    add_series(ds, s, "US", series_uid, 1, "Abdomen US", later(s.when, 3))
    add_equipment(ds, s.site, "SYNTHETIC MEDICAL", "Sonic 9", rng)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.InstanceNumber = 1
    frames = 3
    ds.NumberOfFrames = frames
    ds.FrameTime = "33.3"
    ds.FrameIncrementPointer = 0x00181063
    ds.CineRate = 30
    ds.BurnedInAnnotation = "YES"
    ds.TransducerData = "C5-1"
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 12
    region.RegionLocationMaxX1 = 63
    region.RegionLocationMaxY1 = 47
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = 0.03
    region.PhysicalDeltaY = 0.03
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    add_image_pixel(ds, 48, 64, samples=3, bits=8, signed=False)
    pixels = np_rng.integers(0, 120, (frames, 48, 64, 3), dtype=np.uint8)
    pixels[:, 1:9, 2:40, :] = 255  # the banner where the scanner burns in name and ID
    ds.PixelData = pixels.tobytes()
    return ds


def secondary_capture(
    s: Study, series_uid: str, sop_uid: str, rng: random.Random, np_rng: np.random.Generator
) -> Dataset:
    ds = _base(s, SECONDARY_CAPTURE, sop_uid, ImplicitVRLittleEndian, rng)
    add_series(ds, s, "OT", series_uid, 99, "Screen capture", later(s.when, 30))
    add_equipment(ds, s.site, "SYNTHETIC WORKSTATION", "Viewer 5", rng)
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = "SYNTHETIC WORKSTATION"
    ds.SecondaryCaptureDeviceManufacturerModelName = "Viewer 5"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "YES"
    add_image_pixel(ds, 64, 64, samples=1, bits=8, signed=False)
    ds.PixelData = np_rng.integers(0, 255, (64, 64), dtype=np.uint8).tobytes()
    return ds


def _text_item(relationship: str, concept: Dataset, text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = Sequence([concept])
    item.TextValue = text
    return item


def _evidence(s: Study, series: dict[str, list[tuple[str, str]]]) -> Sequence:
    """Current Requested Procedure Evidence: study → series → SOP references."""
    study = Dataset()
    study.StudyInstanceUID = s.uid
    study.ReferencedSeriesSequence = Sequence()
    for series_uid, sops in series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedSOPSequence = Sequence([_sop_ref(c, i) for c, i in sops])
        study.ReferencedSeriesSequence.append(item)
    return Sequence([study])


def _sop_ref(sop_class: str, sop_uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = sop_uid
    return ref


def _sr_document(
    ds: Dataset, s: Study, modality: str, series_uid: str, title: Dataset, when: datetime, rng: random.Random
) -> None:
    add_series(ds, s, modality, series_uid, 100 if modality == "SR" else 101, title.CodeMeaning, when)
    add_equipment(ds, s.site, "SYNTHETIC REPORTING", "Reporter 2", rng)
    ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([title])
    ds.ContinuityOfContent = "SEPARATE"


def text_report(
    s: Study, series_uid: str, sop_uid: str, evidence: dict[str, list[tuple[str, str]]], rng: random.Random
) -> Dataset:
    """A Basic Text SR (TID 2000 shape) with nested containers, PNAME and TEXT items."""
    ds = _base(s, BASIC_TEXT_SR, sop_uid, ExplicitVRLittleEndian, rng)
    _sr_document(
        ds, s, "SR", series_uid, code("18748-4", "LN", "Diagnostic Imaging Report"), later(s.when, 60), rng
    )
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName = s.site.reading.pn
    observer.VerifyingOrganization = s.site.institution
    observer.VerificationDateTime = later(s.when, 90).strftime("%Y%m%d%H%M%S")
    ds.VerifyingObserverSequence = Sequence([observer])
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(s, evidence)
    p = s.patient.person
    author = Dataset()
    author.RelationshipType = "HAS OBS CONTEXT"
    author.ValueType = "PNAME"
    author.ConceptNameCodeSequence = Sequence([code("121008", "DCM", "Person Observer Name")])
    author.PersonName = s.site.reading.pn
    findings = Dataset()
    findings.RelationshipType = "CONTAINS"
    findings.ValueType = "CONTAINER"
    findings.ContinuityOfContent = "SEPARATE"
    findings.ConceptNameCodeSequence = Sequence([code("121070", "DCM", "Findings")])
    findings.ContentSequence = Sequence(
        [
            _text_item(
                "CONTAINS",
                code("121071", "DCM", "Finding"),
                f"{p.given} {p.family} (MRN {s.patient.patient_id}): {rng.randrange(5, 30)} mm lesion, "
                f"compared with the study of accession {s.accession}.",
            ),
            _text_item("CONTAINS", code("121071", "DCM", "Finding"), "No other abnormality."),
        ]
    )
    conclusion = Dataset()
    conclusion.RelationshipType = "CONTAINS"
    conclusion.ValueType = "CONTAINER"
    conclusion.ContinuityOfContent = "SEPARATE"
    conclusion.ConceptNameCodeSequence = Sequence([code("121076", "DCM", "Conclusion")])
    conclusion.ContentSequence = Sequence(
        [
            _text_item(
                "CONTAINS", code("121077", "DCM", "Conclusion"), f"Discussed with {s.site.referring.pn}."
            )
        ]
    )
    ds.ContentSequence = Sequence([author, findings, conclusion])
    return ds


def key_objects(
    s: Study, series_uid: str, sop_uid: str, evidence: dict[str, list[tuple[str, str]]], rng: random.Random
) -> Dataset:
    """A Key Object Selection (TID 2010) flagging instances of the study 'Of Interest'."""
    ds = _base(s, KEY_OBJECT_SELECTION, sop_uid, ExplicitVRLittleEndian, rng)
    _sr_document(ds, s, "KO", series_uid, code("113000", "DCM", "Of Interest"), later(s.when, 45), rng)
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = Sequence([template])
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(s, evidence)
    items = []
    for sops in evidence.values():
        for sop_class, uid in sops:
            item = Dataset()
            item.RelationshipType = "CONTAINS"
            item.ValueType = "IMAGE"
            item.ReferencedSOPSequence = Sequence([_sop_ref(sop_class, uid)])
            items.append(item)
    ds.ContentSequence = Sequence(items)
    return ds
