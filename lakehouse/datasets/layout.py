"""Where each file of a dataset version lives, relative to its folder ``<project>/<name>/vN/``.

Folder names are pseudonymous values only (the project's PatientID token, ``2.25.`` UIDs);
anything else in a name is replaced, so no header text ever becomes a path.
"""

from __future__ import annotations

import hashlib
import re

VERSION_FILE = "version.json"
CHECKSUMS = "checksums.sha256"
CROISSANT = "croissant.json"
DATASHEET = "DATASHEET.md"
MANIFEST_FILES = {
    "labelstudio": ("manifests/labelstudio_tasks.json",),
    "monai": ("manifests/monai_datalist.json",),
    "nnunet": ("manifests/nnunet/dataset.json", "manifests/nnunet/splits_final.json"),
    "ohif": ("manifests/ohif_dicom.json",),
}

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def safe_name(value: str | None) -> str:
    """``value`` when it is a plain token, else a hash of it (never the text itself)."""
    if value and _SAFE.match(value):
        return value
    return "x" + hashlib.sha256((value or "").encode()).hexdigest()[:16]


def case_id(series_instance_uid: str) -> str:
    """A short stable case identifier for a series (nnU-Net case names, NIfTI file names)."""
    return "c" + hashlib.sha256(series_instance_uid.encode()).hexdigest()[:12]


def version_prefix(project: str, name: str, version: int) -> str:
    return f"{project}/{name}/v{version}/"


def dicom_path(split: str, patient: str, study: str, series: str, sop: str) -> str:
    return f"dicom/{split}/{safe_name(patient)}/{safe_name(study)}/{safe_name(series)}/{safe_name(sop)}.dcm"


def nifti_path(split: str, series: str) -> str:
    """nnU-Net's naming (``<case>_0000.nii.gz``: channel 0), so the files drop into imagesTr/imagesTs."""
    return f"nifti/{split}/{case_id(series)}_0000.nii.gz"


def nifti_sidecar_path(split: str, series: str) -> str:
    return f"nifti/{split}/{case_id(series)}.json"


def label_path(split: str, series: str) -> str:
    """nnU-Net's label naming (``<case>.nii.gz``, as in labelsTr) beside the images' split folders."""
    return f"labels/{split}/{case_id(series)}.nii.gz"


def png_path(split: str, patient: str, series: str, sop: str, frame: int, frames: int) -> str:
    suffix = f"_f{frame:04d}" if frames > 1 else ""
    return f"png/{split}/{safe_name(patient)}/{safe_name(series)}/{safe_name(sop)}{suffix}.png"
