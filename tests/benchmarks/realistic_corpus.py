"""A benchmark corpus shaped like a hospital archive (issue 14), run by hand or imported by benchmarks.

    .venv/bin/python tests/benchmarks/realistic_corpus.py --objects 2000 --out /tmp/corpus

The issue measures export speed on "about 230 header elements per object including nested
sequences; CT, MR, CR, US, SC, PR, SR, KO". ``lakehouse.synth`` objects carry 106-162 and no
PR, and the test suite depends on their exact bytes, so this module starts from them and
adds what real scanners, RIS and PACS write: acquisition and reconstruction parameters,
request, procedure and protocol codes, staff identification, issuer and contributing-equipment
sequences, references to localizers and source images, a second vendor private block. Each
MR study grows to two series, CR studies get a lateral view and US studies several cine
loops; every MR study and every other patient's CT study get a Grayscale Softcopy
Presentation State referencing their images. Every value is fake; names and IDs sit where real devices put them, so the
de-identification has the usual work to do. The same arguments write the same bytes.
"""

from __future__ import annotations

import argparse
import copy
import io
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from lakehouse.synth import generate_archive
from lakehouse.synth.identity import person
from lakehouse.synth.modules import code

CT_SLICES = 14
MR_SERIES = (("T2 TSE AX", 3, "SE", 4000, 95, 150), ("T1 SE SAG", 4, "SE", 550, 12, 90))
MR_SLICES = 10  # per MR series
US_LOOPS = 4
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
MPPS = "1.2.840.10008.3.1.2.3.3"
VENDOR_CREATOR = "SYNTH MEDICAL HEADER 2"
IMAGE_MODALITIES = frozenset({"CT", "MR", "CR", "US", "OT"})


def write_realistic_archive(root: Path, objects: int, *, seed: int = 0, ct_size: int = 256) -> list[Path]:
    """Write about ``objects`` files as ``root/<study>/<series>/<sop>.dcm`` (whole patients,
    so up to one patient's objects more); returns their paths, sorted."""
    paths = []
    for ds in realistic_objects(objects, seed=seed, ct_size=ct_size):
        path = Path(root) / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return sorted(paths)


def realistic_objects(objects: int, *, seed: int = 0, ct_size: int = 256) -> Iterator[Dataset]:
    """Enriched synthetic patients until at least ``objects`` datasets have been yielded."""
    produced = index = 0
    patient: list[Dataset] = []
    # Every synthetic patient has more than one object, so ``objects`` patients are always enough.
    for _, data in generate_archive(patients=max(objects, 1), seed=seed, ct_size=ct_size, ct_slices=CT_SLICES):
        ds = pydicom.dcmread(io.BytesIO(data))
        if patient and ds.PatientID != patient[0].PatientID:
            for out in _patient(patient, seed, ct_size, index):
                produced += 1
                yield out
            patient, index = [], index + 1
            if produced >= objects:
                return
        patient.append(ds)
    yield from _patient(patient, seed, ct_size, index)


def element_count(ds: Dataset) -> int:
    """Elements at every depth (a sequence counts as one, plus everything in its items)."""
    total = 0
    for element in ds:
        total += 1
        if element.VR == "SQ":
            total += sum(element_count(item) for item in element.value)
    return total


# --- one patient ---------------------------------------------------------------------------


def _patient(synth: list[Dataset], seed: int, ct_size: int, index: int) -> Iterator[Dataset]:
    studies: dict[str, list[Dataset]] = defaultdict(list)
    for ds in synth:
        studies[ds.StudyInstanceUID].append(ds)
    for study_uid, members in studies.items():
        rng = random.Random(f"realistic:{seed}:{study_uid}")
        np_rng = np.random.default_rng([seed, int(study_uid.rsplit(".", 1)[-1]) % 2**32])
        context = _study_context(members[0], rng)
        modality = members[0].Modality
        if modality == "MR":
            members = _mr_series(members, ct_size, np_rng)
        elif modality == "CR":
            members = [*members, _clone(members[0], "CR-LAT", 2, ViewPosition="LL", SeriesNumber=2,
                                        SeriesDescription="Chest LAT")]
        elif modality == "US":
            members = [*members, *(_clone(members[0], f"US-{i}", i + 1) for i in range(1, US_LOOPS))]
        for ds in members:
            _enrich(ds, context, random.Random(f"realistic:{seed}:{ds.SOPInstanceUID}"))
            yield ds
        images = [ds for ds in members if ds.Modality in ("CT", "MR")]
        if images and (modality == "MR" or index % 2 == 0):
            yield _presentation_state(images, rng)


def _clone(ds: Dataset, tag: str, number: int, **changes: object) -> Dataset:
    """Another instance like ``ds`` (same series unless ``changes`` say otherwise)."""
    out = copy.deepcopy(ds)
    out.SOPInstanceUID = generate_uid(entropy_srcs=[ds.SOPInstanceUID, tag])
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.InstanceNumber = number
    if "SeriesNumber" in changes:
        out.SeriesInstanceUID = generate_uid(entropy_srcs=[ds.SeriesInstanceUID, tag])
    for keyword, value in changes.items():
        setattr(out, keyword, value)
    return out


def _mr_series(synth: list[Dataset], ct_size: int, np_rng: np.random.Generator) -> list[Dataset]:
    """Two MR series of MR_SLICES slices each, at a clinical matrix, from synth's 3-slice series."""
    size = min(256, ct_size)
    template = synth[0]
    out = []
    for description, number, scanning, tr, te, flip in MR_SERIES:
        series_uid = generate_uid(entropy_srcs=[template.SeriesInstanceUID, description])
        for i in range(MR_SLICES):
            ds = _clone(template, f"{description}:{i}", i + 1, SeriesNumber=number, SeriesDescription=description)
            ds.SeriesInstanceUID = series_uid
            ds.ScanningSequence = scanning
            ds.RepetitionTime = str(tr)
            ds.EchoTime = str(te)
            ds.FlipAngle = str(flip)
            ds.ImagePositionPatient = [-120.0, -120.0, round(-25.0 + i * 5.0, 2)]
            ds.SliceLocation = round(-25.0 + i * 5.0, 2)
            ds.Rows = ds.Columns = size
            ds.PixelSpacing = [round(230.0 / size, 4)] * 2
            ds.PixelData = np_rng.integers(0, 2000, (size, size), dtype=np.uint16).tobytes()
            out.append(ds)
    return out


# --- shared header content -----------------------------------------------------------------


@dataclass(frozen=True)
class _StudyContext:
    """What every object of a study agrees on: request, visit, staff, devices."""

    admission: str
    pps_uid: str
    scout_uid: str
    consulting: str
    referring_id: str
    operator_id: str
    ward: str
    service: str
    device_uid: str
    station_ae: str
    reason: str
    ihe_issuers: bool  # not every site's RIS sends IHE issuers and staff IDs
    pacs_coerced: bool  # nor does PACS coerce every study
    pacs_time: str


def _study_context(first: Dataset, rng: random.Random) -> _StudyContext:
    uid = first.StudyInstanceUID
    return _StudyContext(
        admission=f"ADM{rng.randrange(10**6, 10**7)}",
        pps_uid=generate_uid(entropy_srcs=[uid, "pps"]),
        scout_uid=generate_uid(entropy_srcs=[uid, "localizer"]),
        consulting=person(rng, prefix="Dr.").pn,
        referring_id=f"{rng.randrange(10**5, 10**6)}",
        operator_id=f"T{rng.randrange(1000, 9999)}",
        ward=rng.choice(["Ward 4B", "ICU 2", "Outpatient", "ED Bay 7"]),
        service=rng.choice(["Pulmonology", "Oncology", "Neurology", "Internal Medicine"]),
        device_uid=generate_uid(entropy_srcs=[uid, "device"]),
        station_ae=f"{first.get('StationName', 'RAD01')}_AE",
        reason=rng.choice(["Follow-up of known nodule", "Rule out metastasis", "Persistent headache",
                           "Abdominal pain", "Staging"]),
        ihe_issuers=rng.random() < 0.5,
        pacs_coerced=rng.random() < 0.5,
        pacs_time=f"{first.StudyDate}{rng.randrange(10, 23):02d}{rng.randrange(0, 60):02d}00",
    )


def _enrich(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    _patient_and_visit(ds, ctx)
    _request(ds, ctx)
    _series_and_equipment(ds, ctx, rng)
    _vendor_block(ds, rng)
    if ds.Modality in IMAGE_MODALITIES:
        _image_common(ds, ctx, rng)
    extra = {"CT": _ct, "MR": _mr, "CR": _cr, "US": _us, "OT": _sc, "SR": _sr, "KO": _sr}[ds.Modality]
    extra(ds, ctx, rng)


def _issuer(namespace: str, universal: str) -> Dataset:
    item = Dataset()
    item.LocalNamespaceEntityID = namespace
    item.UniversalEntityID = universal
    item.UniversalEntityIDType = "ISO"
    return item


def _staff_id(identifier: str, name: str, institution: str) -> Dataset:
    item = Dataset()
    item.PersonIdentificationCodeSequence = Sequence([code(identifier, "L", name)])
    item.InstitutionName = institution
    item.PersonTelephoneNumbers = "+1-555-0100"
    return item


def _patient_and_visit(ds: Dataset, ctx: _StudyContext) -> None:
    family, given = str(ds.PatientName).split("^")[:2]
    ds.OtherPatientNames = f"{family}^{given[0]}"
    if ctx.ihe_issuers:
        qualifiers = _issuer("SEH-MRN", "1.2.826.0.1.3680043.10.1.77")
        qualifiers.IdentifierTypeCode = "MR"
        ds.IssuerOfPatientIDQualifiersSequence = Sequence([qualifiers])
    ds.Allergies = "NKDA"
    ds.AdmissionID = ctx.admission
    ds.IssuerOfAdmissionIDSequence = Sequence([_issuer("SEH-ADT", "1.2.826.0.1.3680043.10.1.78")])
    ds.CurrentPatientLocation = ctx.ward


def _request(ds: Dataset, ctx: _StudyContext) -> None:
    ds.IssuerOfAccessionNumberSequence = Sequence([_issuer("SEH-RIS", "1.2.826.0.1.3680043.10.1.79")])
    ds.ReferringPhysicianTelephoneNumbers = "+1-555-0199"
    referring = str(ds.ReferringPhysicianName)
    if ctx.ihe_issuers:
        ds.ReferringPhysicianIdentificationSequence = Sequence(
            [_staff_id(ctx.referring_id, referring, str(ds.get("InstitutionName", "")))]
        )
    ds.ConsultingPhysicianName = ctx.consulting
    ds.RequestingService = ctx.service
    ds.ReasonForTheRequestedProcedure = ctx.reason
    procedure = ds.ProcedureCodeSequence[0]
    procedure.CodingSchemeVersion = "2.73"
    item = ds.RequestAttributesSequence[0]
    item.ScheduledProcedureStepDescription = ds.StudyDescription
    item.ReasonForTheRequestedProcedure = ctx.reason
    pps = Dataset()
    pps.ReferencedSOPClassUID = MPPS
    pps.ReferencedSOPInstanceUID = ctx.pps_uid
    ds.ReferencedPerformedProcedureStepSequence = Sequence([pps])


def _series_and_equipment(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    ds.PerformedProcedureStepEndDate = ds.get("PerformedProcedureStepStartDate", ds.StudyDate)
    ds.PerformedProcedureStepEndTime = f"{min(int(str(ds.StudyTime)[:2]) + 1, 23):02d}0000"
    ds.PerformedStationAETitle = ctx.station_ae
    ds.PerformedStationName = ds.get("StationName", "")
    ds.PerformedLocation = f"Room {rng.randrange(1, 9)}"
    protocol = ds.ProcedureCodeSequence[0]
    ds.PerformedProtocolCodeSequence = Sequence([code(protocol.CodeValue, "LN", protocol.CodeMeaning)])
    ds.OperatorIdentificationSequence = Sequence(
        [_staff_id(ctx.operator_id, str(ds.get("OperatorsName", "")), str(ds.get("InstitutionName", "")))]
    )
    ds.DeviceUID = ctx.device_uid
    if not ctx.pacs_coerced:
        return
    contributor = Dataset()
    contributor.Manufacturer = "SYNTHETIC PACS"
    contributor.ManufacturerModelName = "Archive 7"
    contributor.InstitutionName = ds.get("InstitutionName", "")
    contributor.InstitutionAddress = ds.get("InstitutionAddress", "")
    contributor.StationName = "PACSGW01"
    contributor.SoftwareVersions = "7.4.2"
    contributor.ContributionDateTime = ctx.pacs_time
    contributor.ContributionDescription = "Attributes coerced at ingest"
    contributor.PurposeOfReferenceCodeSequence = Sequence([code("109103", "DCM", "Modifying Equipment")])
    ds.ContributingEquipmentSequence = Sequence([contributor])


def _vendor_block(ds: Dataset, rng: random.Random) -> None:
    """A second vendor private block, as scanners write (version strings, scalars, a binary blob)."""
    block = ds.private_block(0x0019, VENDOR_CREATOR, create=True)
    block.add_new(0x08, "CS", "IMAGE NUM 4")
    block.add_new(0x09, "LO", "1.0")
    block.add_new(0x0A, "US", rng.randrange(1, 64))
    block.add_new(0x0B, "DS", f"{rng.uniform(0, 1000):.4f}")
    block.add_new(0x0C, "IS", str(rng.randrange(0, 5000)))
    block.add_new(0x0D, "FD", [rng.uniform(-1, 1) for _ in range(3)])
    block.add_new(0x0E, "LT", f"TablePosition={rng.randrange(-500, 500)};Mode=AUTO;Filter=Standard")
    block.add_new(0x0F, "OB", rng.randbytes(64))


def _image_common(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    ds.AcquisitionNumber = 1
    ds.ImageComments = rng.choice(["", "Repeat after motion", "Post contrast", "Standard protocol"])
    ds.QualityControlImage = "NO"
    ds.RecognizableVisualFeatures = "NO"
    ds.LossyImageCompression = "00"
    ds.AcquisitionContextSequence = Sequence()
    if ds.Modality in ("CT", "MR", "CR"):
        ds.PresentationLUTShape = "IDENTITY"
        ds.WindowCenterWidthExplanation = "WINDOW1"
        ds.IrradiationEventUID = generate_uid(entropy_srcs=[ds.SOPInstanceUID, "irradiation"])
        localizer = Dataset()
        localizer.ReferencedSOPClassUID = ds.SOPClassUID
        localizer.ReferencedSOPInstanceUID = ctx.scout_uid
        localizer.PurposeOfReferenceCodeSequence = Sequence([code("121311", "DCM", "Localizer")])
        ds.ReferencedImageSequence = Sequence([localizer])
        if ds.get("BitsAllocated") == 16:
            # Read datasets keep their encoding, so pydicom does not resolve 'US or SS' on write.
            vr = "SS" if ds.PixelRepresentation else "US"
            ds.add_new("SmallestImagePixelValue", vr, 0)
            ds.add_new("LargestImagePixelValue", vr, 4095)


def _ct(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    ds.ScanOptions = "HELICAL MODE"
    ds.FilterType = "BODY FILTER"
    ds.GeneratorPower = 48
    ds.FocalSpots = "1.2"
    ds.DistanceSourceToDetector = "1085.6"
    ds.DistanceSourceToPatient = "595"
    ds.SpiralPitchFactor = 0.984
    ds.TableSpeed = 39.4
    ds.TableFeedPerRotation = 39.4
    ds.TotalCollimationWidth = 40.0
    ds.SingleCollimationWidth = 0.625
    ds.RevolutionTime = 0.5
    ds.ExposureModulationType = "TOPOGRAM"
    ds.EstimatedDoseSaving = round(rng.uniform(10, 40), 2)
    ds.ReconstructionTargetCenterPatient = [0.0, -150.0, float(ds.SliceLocation)]
    ds.add_new("PixelPaddingValue", "SS", -2000)
    ds.ContrastBolusRoute = "IV"
    ds.ContrastBolusVolume = "80"
    exposure = Dataset()
    exposure.ExposureTimeInms = float(ds.ExposureTime)
    exposure.XRayTubeCurrentInmA = float(ds.XRayTubeCurrent)
    exposure.ExposureInmAs = float(ds.Exposure)
    exposure.CTDIvol = float(ds.CTDIvol)
    exposure.CTDIPhantomTypeCodeSequence = Sequence([code("113691", "DCM", "IEC Body Dosimetry Phantom")])
    ds.CTExposureSequence = Sequence([exposure])


def _mr(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    ds.SequenceName = f"*tse2d1_{rng.choice((13, 15, 17))}"
    ds.AngioFlag = "N"
    ds.SpacingBetweenSlices = "5.5"
    ds.NumberOfPhaseEncodingSteps = 230
    ds.EchoNumbers = "1"
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "81.25"
    ds.PixelBandwidth = "190"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [0, 256, 208, 0]
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = f"{rng.uniform(0.5, 2.5):.4f}"
    ds.ImagesInAcquisition = str(MR_SLICES)
    ds.WindowCenter = "600"
    ds.WindowWidth = "1400"
    mapping = Dataset()
    mapping.LUTExplanation = "Signal intensity"
    mapping.LUTLabel = "SI"
    mapping.MeasurementUnitsCodeSequence = Sequence([code("1", "UCUM", "no units")])
    mapping.add_new("RealWorldValueFirstValueMapped", "US", 0)
    mapping.add_new("RealWorldValueLastValueMapped", "US", 4095)
    mapping.RealWorldValueIntercept = 0.0
    mapping.RealWorldValueSlope = 1.0
    ds.RealWorldValueMappingSequence = Sequence([mapping])


def _cr(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    ds.ViewCodeSequence = Sequence([code("399348003", "SCT", "postero-anterior")])
    ds.Sensitivity = "200"
    ds.ExposureIndex = rng.randrange(200, 600)
    ds.TargetExposureIndex = "400"
    ds.DeviationIndex = f"{rng.uniform(-2, 2):.2f}"
    ds.RelativeXRayExposure = rng.randrange(300, 900)
    ds.ExposureInuAs = rng.randrange(2000, 6000)
    ds.XRayTubeCurrent = 250
    ds.Exposure = 5
    ds.Grid = ["FOCUSED", "RECIPROCATING"]
    ds.FocalSpots = "1.2"
    ds.FilterType = "NONE"
    ds.GeneratorPower = 50
    ds.AcquisitionDeviceProcessingDescription = "CHEST PA"
    ds.AcquisitionDeviceProcessingCode = "TH-PA-01"
    ds.DetectorID = f"DET{rng.randrange(1000, 9999)}"
    ds.DetectorType = "STORAGE"
    ds.CassetteOrientation = "PORTRAIT"
    ds.CassetteSize = "35CMX43CM"
    ds.PlateType = "ST-VI"
    ds.PhosphorType = "BaFBr:Eu"
    ds.ExposuresOnPlate = rng.randrange(100, 5000)
    ds.BodyPartThickness = "220"
    ds.FieldOfViewShape = "RECTANGLE"
    ds.EstimatedRadiographicMagnificationFactor = "1.1"


def _us(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    ds.TransducerType = "CURVED LINEAR"
    ds.TransducerFrequency = 3500
    ds.ProcessingFunction = "ABDOMEN GEN"
    ds.MechanicalIndex = f"{rng.uniform(0.6, 1.4):.1f}"
    ds.BoneThermalIndex = "0.4"
    ds.SoftTissueThermalIndex = "0.3"
    ds.DepthOfScanField = 160
    ds.UltrasoundColorDataPresent = 0
    ds.StageName = "Liver"
    ds.StageNumber = 1
    ds.NumberOfStages = 1
    ds.ViewName = "Subcostal"
    ds.ViewNumber = ds.InstanceNumber
    ds.NumberOfViewsInStage = US_LOOPS
    ds.PreferredPlaybackSequencing = 0
    ds.ActualFrameDuration = 33
    ds.HeartRate = 0
    ds.PatientOrientation = ""


def _sc(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    ds.DateOfSecondaryCapture = ds.ContentDate
    ds.TimeOfSecondaryCapture = ds.ContentTime
    ds.SecondaryCaptureDeviceID = f"WS{rng.randrange(10, 99)}"
    ds.SecondaryCaptureDeviceSoftwareVersions = "5.2.1"
    ds.VideoImageFormatAcquired = "DIGITAL"
    ds.DigitalImageFormatAcquired = "SCREEN"
    ds.PatientOrientation = ""
    source = Dataset()
    source.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    source.ReferencedSOPInstanceUID = generate_uid(entropy_srcs=[ds.StudyInstanceUID, "sc-source"])
    source.PurposeOfReferenceCodeSequence = Sequence([code("121320", "DCM", "Uncompressed predecessor")])
    ds.SourceImageSequence = Sequence([source])


def _sr(ds: Dataset, ctx: _StudyContext, rng: random.Random) -> None:
    ds.PerformedProcedureCodeSequence = Sequence([copy.deepcopy(ds.ProcedureCodeSequence[0])])
    ds.PreliminaryFlag = "FINAL"
    ds.ReferencedRequestSequence = Sequence([_referenced_request(ds)])


def _referenced_request(ds: Dataset) -> Dataset:
    request = ds.RequestAttributesSequence[0]
    item = Dataset()
    item.StudyInstanceUID = ds.StudyInstanceUID
    item.ReferencedStudySequence = Sequence()
    item.AccessionNumber = ds.AccessionNumber
    item.IssuerOfAccessionNumberSequence = Sequence([_issuer("SEH-RIS", "1.2.826.0.1.3680043.10.1.79")])
    item.PlacerOrderNumberImagingServiceRequest = f"PO{ds.AccessionNumber[1:]}"
    item.FillerOrderNumberImagingServiceRequest = f"FO{ds.AccessionNumber[1:]}"
    item.RequestedProcedureID = request.RequestedProcedureID
    item.RequestedProcedureDescription = request.RequestedProcedureDescription
    item.RequestedProcedureCodeSequence = Sequence([copy.deepcopy(ds.ProcedureCodeSequence[0])])
    return item


# --- presentation states -------------------------------------------------------------------


def _presentation_state(images: list[Dataset], rng: random.Random) -> Dataset:
    """A Grayscale Softcopy Presentation State over up to 8 images of the study."""
    first = images[0]
    sop_uid = generate_uid(entropy_srcs=[first.StudyInstanceUID, "gsps"])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(GSPS)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.SourceApplicationEntityTitle = "SYNTH_VIEWER"
    skip = {"SOPClassUID", "SOPInstanceUID", "Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
            "ImageType", "InstanceNumber", "PixelData", "ContentDate", "ContentTime"}
    for element in first:  # patient, study, request, equipment and private blocks as the images carry them
        if element.tag.group in (0x0008, 0x0009, 0x0010, 0x0019, 0x0020, 0x0032, 0x0040) \
                and element.keyword not in skip and not _image_level(element.keyword):
            ds.add(copy.deepcopy(element))
    ds.SOPClassUID = GSPS
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "PR"
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[first.StudyInstanceUID, "gsps-series"])
    ds.SeriesNumber = 300
    ds.SeriesDescription = "Key measurements"
    ds.Manufacturer = "SYNTHETIC WORKSTATION"
    ds.ManufacturerModelName = "Viewer 5"
    ds.SoftwareVersions = "5.2.1"
    ds.InstanceNumber = 1
    ds.ContentLabel = "MEASUREMENTS"
    ds.ContentDescription = "Nodule measurements"
    ds.PresentationCreationDate = first.StudyDate
    ds.PresentationCreationTime = f"{min(int(str(first.StudyTime)[:2]) + 2, 23):02d}3000"
    ds.ContentCreatorName = first.get("NameOfPhysiciansReadingStudy", "")
    creator = Dataset()
    creator.PersonIdentificationCodeSequence = Sequence([code(f"R{rng.randrange(1000, 9999)}", "L", "Reader")])
    creator.InstitutionName = first.get("InstitutionName", "")
    ds.ContentCreatorIdentificationCodeSequence = Sequence([creator])
    chosen = images[:: max(1, len(images) // 8)][:8]
    by_series: dict[str, list[Dataset]] = defaultdict(list)
    for image in chosen:
        by_series[image.SeriesInstanceUID].append(image)
    series_items = []
    for series_uid, members in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedImageSequence = Sequence([_image_ref(m) for m in members])
        series_items.append(item)
    ds.ReferencedSeriesSequence = Sequence(series_items)
    area = Dataset()
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [int(first.Columns), int(first.Rows)]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelSpacing = list(first.PixelSpacing)
    ds.DisplayedAreaSelectionSequence = Sequence([area])
    ds.GraphicLayerSequence = Sequence([_layer("MEASURE", 1, "Measurements"), _layer("NOTES", 2, "Reader notes")])
    ds.GraphicAnnotationSequence = Sequence(
        [_annotation(image, rng, i) for i, image in enumerate(chosen[:3])]
    )
    voi = Dataset()
    voi.ReferencedImageSequence = Sequence([_image_ref(m) for m in chosen])
    voi.WindowCenter = "-600" if first.Modality == "CT" else "600"
    voi.WindowWidth = "1500" if first.Modality == "CT" else "1400"
    voi.WindowCenterWidthExplanation = "LUNG" if first.Modality == "CT" else "DEFAULT"
    voi.VOILUTFunction = "LINEAR"
    ds.SoftcopyVOILUTSequence = Sequence([voi])
    if first.Modality == "CT":
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
    ds.PresentationLUTShape = "IDENTITY"
    ds.ImageRotation = 0
    ds.ImageHorizontalFlip = "N"
    return ds


def _image_level(keyword: str) -> bool:
    return keyword in {"AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime", "AcquisitionNumber",
                       "ImageComments", "ReferencedImageSequence", "IrradiationEventUID", "FrameOfReferenceUID",
                       "PositionReferenceIndicator", "ImagePositionPatient", "ImageOrientationPatient",
                       "SliceLocation", "AcquisitionContextSequence", "WindowCenterWidthExplanation",
                       "QualityControlImage", "RecognizableVisualFeatures", "LossyImageCompression",
                       "PresentationLUTShape", "BurnedInAnnotation"}


def _image_ref(image: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = image.SOPClassUID
    ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return ref


def _layer(name: str, order: int, description: str) -> Dataset:
    layer = Dataset()
    layer.GraphicLayer = name
    layer.GraphicLayerOrder = order
    layer.GraphicLayerRecommendedDisplayGrayscaleValue = 0xFFFF
    layer.GraphicLayerDescription = description
    return layer


def _annotation(image: Dataset, rng: random.Random, index: int) -> Dataset:
    """A measurement line with its label on one image, and a reader's note."""
    columns, rows = int(image.Columns), int(image.Rows)
    x0, y0 = rng.uniform(0.3, 0.5) * columns, rng.uniform(0.3, 0.5) * rows
    x1, y1 = x0 + rng.uniform(5, 20), y0 + rng.uniform(5, 20)
    size = rng.randrange(4, 25)
    item = Dataset()
    item.ReferencedImageSequence = Sequence([_image_ref(image)])
    item.GraphicLayer = "MEASURE" if index else "NOTES"
    text = Dataset()
    text.BoundingBoxAnnotationUnits = "PIXEL"
    text.BoundingBoxTopLeftHandCorner = [x1 + 4, y1]
    text.BoundingBoxBottomRightHandCorner = [x1 + 60, y1 + 12]
    text.BoundingBoxTextHorizontalJustification = "LEFT"
    text.UnformattedTextValue = f"{size} mm" if index else f"Nodule {size} mm, compare with prior study"
    text.AnchorPointAnnotationUnits = "PIXEL"
    text.AnchorPoint = [x1, y1]
    text.AnchorPointVisibility = "Y"
    item.TextObjectSequence = Sequence([text])
    line = Dataset()
    line.GraphicAnnotationUnits = "PIXEL"
    line.GraphicDimensions = 2
    line.NumberOfGraphicPoints = 2
    line.GraphicData = [x0, y0, x1, y1]
    line.GraphicType = "POLYLINE"
    line.GraphicFilled = "N"
    item.GraphicObjectSequence = Sequence([line])
    return item


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ct-size", type=int, default=256)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = write_realistic_archive(args.out, args.objects, seed=args.seed, ct_size=args.ct_size)
    seconds = time.perf_counter() - started
    counts: dict[str, list[int]] = defaultdict(list)
    for path in paths:
        ds = pydicom.dcmread(path)
        # Secondary captures carry Modality OT; the issue counts them as SC.
        counts["SC" if ds.Modality == "OT" else str(ds.Modality)].append(element_count(ds))
    every = [n for values in counts.values() for n in values]
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    print(f"{len(paths)} objects, {megabytes:.1f} MB, written in {seconds:.1f} s under {args.out}")
    print(f"{'modality':8} {'objects':>7} {'share':>6} {'mean':>6} {'min':>5} {'max':>5}")
    mix = Counter({m: len(v) for m, v in counts.items()})
    for modality, number in mix.most_common():
        values = counts[modality]
        print(f"{modality:8} {number:7} {number / len(paths):6.1%} {statistics.mean(values):6.1f} "
              f"{min(values):5} {max(values):5}")
    print(f"{'all':8} {len(every):7} {1:6.1%} {statistics.mean(every):6.1f} {min(every):5} {max(every):5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
