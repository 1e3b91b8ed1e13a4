"""What a dataset version is made of, as plain values: the build fills them, the renderers,
manifests and cards read them. Paths are relative to the version folder (``vN/``), '/'-separated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNITS = ("series", "study")
FORMATS = ("dicom", "nifti", "png")
MANIFESTS = ("labelstudio", "monai", "nnunet", "ohif")


@dataclass(frozen=True)
class Instance:
    """One de-identified object of a member, as the research ``instances`` table holds it."""

    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_class_uid: str
    modality: str | None
    instance_number: int | None
    header_json: str  # DICOM JSON (PS3.18 F) of the de-identified header, no bulk data
    object_sha256: str
    pixel_sha256: str | None  # hash of the Pixel Data value bytes; None without pixels
    dicom_path: str | None = None  # when the ``dicom`` format is built


@dataclass(frozen=True)
class NiftiFile:
    """One series as a volume: ``path`` (.nii.gz) and its sidecar JSON (slice index -> SOP UID),
    and with ``--labels`` the label map of its final annotation on the same grid."""

    series_instance_uid: str
    path: str
    sidecar_path: str
    shape: tuple[int, ...]
    label_path: str | None = None


@dataclass(frozen=True)
class PngImage:
    """One 2D image (a slice, or a frame of a multi-frame object) with the window it was drawn in."""

    path: str
    sop_instance_uid: str
    series_instance_uid: str
    frame: int  # 0-based frame of the object (0 for single-frame objects)
    bits: int  # 8 or 16
    window_center: float | None
    window_width: float | None
    rows: int
    columns: int


@dataclass(frozen=True)
class Member:
    """A series (default) or a whole study, in one split, with the files built for it."""

    member_id: str  # SeriesInstanceUID, or StudyInstanceUID for unit=study
    patient_id: str  # the project's pseudonymous PatientID
    study_instance_uid: str
    split: str
    modality: str | None
    body_part: str | None
    manufacturer: str | None
    instances: tuple[Instance, ...]
    nifti: tuple[NiftiFile, ...] = ()
    png: tuple[PngImage, ...] = ()

    @property
    def series_instance_uids(self) -> tuple[str, ...]:
        return tuple(sorted({i.series_instance_uid for i in self.instances}))


@dataclass(frozen=True)
class Exclusion:
    """A series (or member) left out of a format, with a reason code and one PHI-free line."""

    member_id: str
    series_instance_uid: str | None
    format: str  # dicom | nifti | png | member (left out of the dataset entirely)
    code: str
    reason: str


@dataclass(frozen=True)
class SourceRequest:
    """A governance request the members were exported under (no identified value)."""

    request_id: str
    protocol: str
    purpose: str
    deid_profile: str
    deid_options: tuple[str, ...]


@dataclass(frozen=True)
class VersionContents:
    """Everything the manifests and cards describe. Deterministic: no build time, no user, and
    no version number (the folder ``vN`` and ``version.json`` say it), so a rebuild with the same
    ``--as-of`` and options gives a byte-identical folder."""

    project: str
    name: str
    unit: str
    splits: dict[str, float]  # split name -> target ratio, in the order given
    formats: tuple[str, ...]
    manifests: tuple[str, ...]
    window: str
    selection_kind: str  # "sql" | "yaml"
    selection_text: str
    selection_sha256: str
    sources: dict[str, int]  # research table -> Delta version read
    requests: tuple[SourceRequest, ...]
    members: tuple[Member, ...]
    exclusions: tuple[Exclusion, ...] = ()
    stratify: tuple[str, ...] = ()
    frozen: tuple[str, ...] = ()
    labels: dict[str, int] = field(default_factory=dict)  # segment label -> label value, with --labels
    tool: dict[str, Any] = field(default_factory=dict)  # {"name": "lakehouse", "version": ...}


class Unconvertible(Exception):
    """A series or object that cannot become the requested format; ``code`` names why
    (``mixed_orientation``, ``missing_geometry``, ``gantry_tilt``, ``non_uniform_spacing``,
    ``not_an_image``, ...) and the message says it in one line without header values."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
