"""Manifests that labeling and training tools open as they are, built from a version's contents.

Every manifest is JSON with sorted keys, two-space indent and a final newline, its lists in a
stable order (split order as given, then path or UID), so the same contents give the same bytes.
Only de-identified values reach a manifest: paths of the version, the project's pseudonymous
UIDs and tokens, split names, and (OHIF only) the de-identified header of each instance.

- ``labelstudio``: import tasks, one per PNG image. ``data.image`` is a Label Studio Local Storage
  URL ``/data/local-files/?d=<path>`` with ``<path>`` relative to the version folder: run Label
  Studio with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<pulled version folder>``, add a Local Storage on that
  folder, then import the file. ``meta`` names the split, case, SOP Instance UID, frame and window.
- ``monai``: a Decathlon-style datalist; ``training`` / ``validation`` / ``test`` from the splits
  train / val / test (any other split name is its own key; empty splits are left out because
  MONAI's loader cannot read an empty list). Image paths are relative to the datalist file, so
  ``monai.data.load_decathlon_datalist(path, data_list_key="training")`` resolves them as is.
- ``nnunet``: nnU-Net v2 ``dataset.json`` and a one-fold ``splits_final.json`` whose train / val
  case ids are ``layout.case_id`` of each series: the NIfTI files are already named
  ``<case>_0000.nii.gz`` and go into ``imagesTr`` (train, val) and ``imagesTs`` (test).
- ``ohif``: an OHIF "DICOM JSON" data source (studies -> series -> instances) with each
  instance's metadata naturalized from its de-identified header and
  ``url: "dicomweb:<dicom path>"``, relative to the version folder: serve the version folder
  and open ``/viewer/dicomjson?url=...`` from the same origin path, or rewrite the prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from pydicom.datadict import keyword_for_tag

from lakehouse.datasets import layout
from lakehouse.datasets.model import Instance, Member, NiftiFile, VersionContents

MANIFEST_FORMAT = {"labelstudio": "png", "monai": "nifti", "nnunet": "nifti", "ohif": "dicom"}
"""The format each manifest lists: a manifest is only built with its format."""

LOCAL_FILES_URL = "/data/local-files/?d="
MONAI_KEYS = {"train": "training", "val": "validation", "test": "test"}
NNUNET_TRAINING_SPLITS = ("train", "val")

# Study- and series-level attributes OHIF reads from the DICOM JSON document (its generator's set).
_OHIF_STUDY_KEYWORDS = (
    "StudyInstanceUID",
    "StudyDescription",
    "StudyDate",
    "StudyTime",
    "PatientName",
    "PatientID",
    "AccessionNumber",
    "PatientAge",
    "PatientSex",
    "PatientWeight",
)
_OHIF_SERIES_KEYWORDS = (
    "SeriesInstanceUID",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesDate",
    "SeriesTime",
    "Modality",
    "SliceThickness",
)


def build_manifests(contents: VersionContents) -> dict[str, bytes]:
    """Relative path (``layout.MANIFEST_FILES``) -> bytes for each kind in ``contents.manifests``.

    Raises ValueError for an unknown kind, or one whose format (``MANIFEST_FORMAT``) was not built.
    """
    builders: dict[str, Callable[[VersionContents], tuple[Any, ...]]] = {
        "labelstudio": _label_studio_tasks,
        "monai": _monai_datalist,
        "nnunet": _nnunet_dataset,
        "ohif": _ohif_dicom_json,
    }
    files: dict[str, bytes] = {}
    for kind in contents.manifests:
        if kind not in builders:
            raise ValueError(f"unknown manifest {kind!r}; choose from {', '.join(sorted(builders))}")
        needed = MANIFEST_FORMAT[kind]
        if needed not in contents.formats:
            raise ValueError(f"the {kind} manifest lists {needed} files: add {needed} to the formats")
        for path, document in zip(layout.MANIFEST_FILES[kind], builders[kind](contents), strict=True):
            files[path] = json_bytes(document)
    return files


def json_bytes(document: Any) -> bytes:
    """The one JSON encoding of every manifest and card: stable bytes for checksums and diffs."""
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def split_order(contents: VersionContents) -> list[str]:
    """Splits as configured, then any other split a member carries (sorted)."""
    extra = sorted({m.split for m in contents.members} - set(contents.splits))
    return [*contents.splits, *extra]


def members_by_split(contents: VersionContents) -> dict[str, list[Member]]:
    """Members grouped by split in ``split_order``, each group sorted by member id."""
    grouped: dict[str, list[Member]] = {split: [] for split in split_order(contents)}
    for member in sorted(contents.members, key=lambda m: m.member_id):
        grouped[member.split].append(member)
    return grouped


def _label_studio_tasks(contents: VersionContents) -> tuple[list[dict[str, Any]]]:
    tasks = []
    for split, members in members_by_split(contents).items():
        images = sorted((png for member in members for png in member.png), key=lambda p: p.path)
        for png in images:
            tasks.append(
                {
                    "data": {"image": LOCAL_FILES_URL + quote(png.path, safe="/")},
                    "meta": {
                        "split": split,
                        "case": layout.case_id(png.series_instance_uid),
                        "series_instance_uid": png.series_instance_uid,
                        "sop_instance_uid": png.sop_instance_uid,
                        "frame": png.frame,
                        "window": {
                            "name": contents.window,
                            "center": png.window_center,
                            "width": png.window_width,
                            "bits": png.bits,
                        },
                    },
                }
            )
    return (tasks,)


def _volumes(members: Iterable[Member]) -> list[NiftiFile]:
    return sorted((nifti for member in members for nifti in member.nifti), key=lambda n: n.path)


def _monai_datalist(contents: VersionContents) -> tuple[dict[str, Any]]:
    datalist: dict[str, Any] = {
        "name": f"{contents.project}/{contents.name}",
        "modality": _channel_names(contents),
    }
    for split, members in members_by_split(contents).items():
        volumes = _volumes(members)
        if volumes:
            datalist[MONAI_KEYS.get(split, split)] = [
                {
                    "image": "../" + nifti.path,  # relative to manifests/, MONAI's default base_dir
                    "case": layout.case_id(nifti.series_instance_uid),
                    "series_instance_uid": nifti.series_instance_uid,
                    **({"label": "../" + nifti.label_path} if nifti.label_path else {}),
                }
                for nifti in volumes
            ]
    return (datalist,)


def _channel_names(contents: VersionContents) -> dict[str, str]:
    """One channel named after the modality. nnU-Net normalizes a channel named "CT" with CT
    statistics and any other name per image (z-score), so mixed modalities join as e.g. "CT+MR"."""
    modalities = sorted({m.modality or "image" for m in contents.members if m.nifti})
    return {"0": "+".join(modalities) if modalities else "image"}


def _nnunet_dataset(contents: VersionContents) -> tuple[dict[str, Any], list[dict[str, list[str]]]]:
    cases = {
        split: sorted(layout.case_id(n.series_instance_uid) for n in _volumes(members))
        for split, members in members_by_split(contents).items()
    }
    dataset = {
        "name": f"{contents.project}/{contents.name}",
        "description": (
            "Images and labels: nifti/<split> into imagesTr/imagesTs, labels/<split> into labelsTr."
            if contents.labels else "Images only: add labelsTr/<case>.nii.gz and extend labels before training."
        ),
        "channel_names": _channel_names(contents),
        "labels": {"background": 0, **dict(sorted(contents.labels.items(), key=lambda item: item[1]))},
        "numTraining": sum(len(cases.get(split, [])) for split in NNUNET_TRAINING_SPLITS),
        "file_ending": ".nii.gz",
    }
    splits_final = [{"train": cases.get("train", []), "val": cases.get("val", [])}]
    return dataset, splits_final


def _ohif_dicom_json(contents: VersionContents) -> tuple[dict[str, Any]]:
    studies: dict[str, dict[str, list[tuple[Instance, dict[str, Any]]]]] = {}
    patients: dict[str, str] = {}
    for member in contents.members:
        for instance in sorted(member.instances, key=_instance_order):
            if instance.dicom_path is None:  # left out of the dicom format (see the exclusions)
                continue
            metadata = naturalize(json.loads(instance.header_json))
            series = studies.setdefault(instance.study_instance_uid, {})
            series.setdefault(instance.series_instance_uid, []).append((instance, metadata))
            patients[instance.study_instance_uid] = member.patient_id
    return ({"studies": [_ohif_study(uid, studies[uid], patients[uid]) for uid in sorted(studies)]},)


def _ohif_study(
    study_uid: str, series: dict[str, list[tuple[Instance, dict[str, Any]]]], patient_id: str
) -> dict[str, Any]:
    first = series[min(series)][0][1]
    study = _pick(first, _OHIF_STUDY_KEYWORDS)
    study["StudyInstanceUID"] = study_uid
    study.setdefault("PatientID", patient_id)  # OHIF needs one; the pseudonymous token is the same value
    study["series"] = [_ohif_series(uid, series[uid]) for uid in sorted(series)]
    study["NumInstances"] = sum(len(s) for s in series.values())
    study["Modalities"] = "/".join(sorted({str(s["Modality"]) for s in study["series"] if "Modality" in s}))
    return study


def _ohif_series(series_uid: str, instances: list[tuple[Instance, dict[str, Any]]]) -> dict[str, Any]:
    ordered = sorted(instances, key=lambda item: _instance_order(item[0]))
    series = _pick(ordered[0][1], _OHIF_SERIES_KEYWORDS)
    series["SeriesInstanceUID"] = series_uid
    series["instances"] = [
        {"metadata": metadata, "url": f"dicomweb:{instance.dicom_path}"} for instance, metadata in ordered
    ]
    return series


def _instance_order(instance: Instance) -> tuple[int, str]:
    """By Instance Number (objects without one last), then SOP Instance UID."""
    number = instance.instance_number
    return (number if number is not None else 2**31, instance.sop_instance_uid)


def _pick(metadata: dict[str, Any], keywords: Iterable[str]) -> dict[str, Any]:
    return {k: metadata[k] for k in keywords if k in metadata}


def naturalize(dicom_json: dict[str, Any]) -> dict[str, Any]:
    """DICOM JSON (PS3.18 F) -> dcmjs-style naturalized metadata, as OHIF reads it: keywords for
    tags, one value as a scalar, several as a list, sequences as lists of items, person names as
    their alphabetic text. Private or unknown tags, empty elements and binary values are left out."""
    natural: dict[str, Any] = {}
    for tag in sorted(dicom_json):
        keyword = keyword_for_tag(int(tag, 16))
        element = dicom_json[tag]
        values = element.get("Value")
        if not keyword or not values:
            continue
        vr = element.get("vr")
        if vr == "SQ":
            natural[keyword] = [naturalize(item or {}) for item in values]
            continue
        if vr == "PN":
            values = [v["Alphabetic"] for v in values if isinstance(v, dict) and v.get("Alphabetic")]
            if not values:
                continue
        natural[keyword] = values[0] if len(values) == 1 else list(values)
    return natural
