"""Attribute groups shared by the synthetic objects (PS3.3 modules, abridged).

Each function adds one module's attributes to a Dataset. Values are fake but
shaped like a real hospital's: people, IDs, addresses, staff and devices all
appear where de-identification has to find them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from lakehouse.synth.identity import Patient, Site

PRIVATE_CREATOR = "LAKEHOUSE SYNTH 1"


@dataclass(frozen=True)
class Study:
    uid: str
    patient: Patient
    site: Site
    when: datetime
    accession: str
    study_id: str
    description: str
    body_part: str
    procedure_code: tuple[str, str, str]  # value, scheme, meaning


def da(d: date) -> str:
    return d.strftime("%Y%m%d")


def tm(t: datetime) -> str:
    return t.strftime("%H%M%S.%f")[:13]


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def add_sop_common(ds: Dataset, sop_class: str, sop_instance: str, created: datetime, charset: str) -> None:
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.InstanceCreationDate = da(created)
    ds.InstanceCreationTime = tm(created)
    ds.InstanceCreatorUID = "1.2.826.0.1.3680043.10.1"
    ds.TimezoneOffsetFromUTC = "+0100"


def add_patient(ds: Dataset, p: Patient, study_date: date) -> None:
    ds.PatientName = p.person.pn
    ds.PatientID = p.patient_id
    ds.IssuerOfPatientID = p.issuer
    ds.TypeOfPatientID = "TEXT"
    ds.PatientBirthDate = da(p.birth_date)
    ds.PatientBirthTime = "0815"
    ds.PatientSex = p.sex
    ds.PatientAge = f"{(study_date - p.birth_date).days // 365:03d}Y"
    ds.PatientSize = f"{p.height_m:.2f}"
    ds.PatientWeight = f"{p.weight_kg:.1f}"
    ds.PatientAddress = p.address
    ds.PatientTelephoneNumbers = p.phone
    ds.PatientMotherBirthName = f"{p.person.family}^Martha"
    ds.Occupation = p.occupation
    ds.EthnicGroup = "UNKNOWN"
    ds.AdditionalPatientHistory = f"Follow-up. Patient {p.person.given} reports pain since last visit."
    ds.PatientComments = f"Contact at {p.phone}"
    ds.OtherPatientIDs = p.other_id
    other = Dataset()
    other.PatientID = p.other_id
    other.IssuerOfPatientID = "INSURER"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])


def add_study(ds: Dataset, s: Study) -> None:
    ds.StudyInstanceUID = s.uid
    ds.StudyDate = da(s.when)
    ds.StudyTime = tm(s.when)
    ds.AccessionNumber = s.accession
    ds.StudyID = s.study_id
    ds.StudyDescription = s.description
    ds.ReferringPhysicianName = s.site.referring.pn
    ds.ReferringPhysicianAddress = s.site.address
    ds.PhysiciansOfRecord = s.site.referring.pn
    ds.NameOfPhysiciansReadingStudy = s.site.reading.pn
    ds.RequestingPhysician = s.site.referring.pn
    ds.RequestedProcedureDescription = s.description
    ds.AdmittingDiagnosesDescription = "Suspected lesion"
    ds.ProcedureCodeSequence = Sequence([code(*s.procedure_code)])
    request = Dataset()
    request.RequestedProcedureID = f"RP{s.accession[-6:]}"
    request.ScheduledProcedureStepID = f"SPS{s.accession[-6:]}"
    request.AccessionNumber = s.accession
    request.StudyInstanceUID = s.uid
    request.RequestedProcedureDescription = s.description
    ds.RequestAttributesSequence = Sequence([request])


def add_series(
    ds: Dataset, s: Study, modality: str, series_uid: str, number: int, description: str, when: datetime
) -> None:
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    ds.SeriesDate = da(when)
    ds.SeriesTime = tm(when)
    ds.ContentDate = da(when)
    ds.ContentTime = tm(when)
    ds.AcquisitionDate = da(when)
    ds.AcquisitionTime = tm(when)
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BodyPartExamined = s.body_part
    ds.OperatorsName = s.site.operator.pn
    ds.PerformingPhysicianName = s.site.reading.pn
    ds.ProtocolName = f"{s.body_part} {modality} routine"
    ds.PerformedProcedureStepID = f"PPS{number:03d}"
    ds.PerformedProcedureStepStartDate = da(when)
    ds.PerformedProcedureStepStartTime = tm(when)
    ds.PerformedProcedureStepDescription = s.description
    ds.AnatomicRegionSequence = Sequence([code("T-D0050", "SRT", s.body_part.title())])


def add_equipment(ds: Dataset, s: Site, manufacturer: str, model: str, rng: random.Random) -> None:
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model
    ds.InstitutionName = s.institution
    ds.InstitutionAddress = s.address
    ds.InstitutionalDepartmentName = s.department
    ds.StationName = s.station
    ds.DeviceSerialNumber = f"SN{rng.randrange(10**6, 10**7)}"
    ds.SoftwareVersions = f"VA{rng.randrange(10, 60)}"
    ds.DateOfLastCalibration = "20200101"
    ds.TimeOfLastCalibration = "070000"


def add_private_block(ds: Dataset, s: Study, rng: random.Random) -> None:
    """A vendor-style private block, holding identifiers as vendors' blocks often do."""
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", f"{s.patient.person.family} {s.patient.patient_id}")
    block.add_new(0x02, "DA", da(s.when))
    block.add_new(0x03, "DS", f"{rng.uniform(0, 10):.3f}")
    block.add_new(0x04, "SH", s.site.station)
    block.add_new(0x05, "UN", rng.randbytes(16))


def add_image_pixel(ds: Dataset, rows: int, columns: int, *, samples: int, bits: int, signed: bool) -> None:
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = bits
    ds.BitsStored = bits if bits == 8 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0


def add_plane(ds: Dataset, index: int, spacing: float, thickness: float) -> None:
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[ds.StudyInstanceUID, "frame-of-reference"])
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [-120.0, -120.0, round(-50.0 + index * thickness, 2)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing, spacing]
    ds.SliceThickness = thickness
    ds.SliceLocation = round(-50.0 + index * thickness, 2)
    ds.PatientPosition = "HFS"


def later(when: datetime, minutes: int) -> datetime:
    return when + timedelta(minutes=minutes)
