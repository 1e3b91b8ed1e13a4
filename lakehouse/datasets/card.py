"""The dataset card of a version, in two forms built from the same contents.

- ``croissant.json``: Croissant 1.0 JSON-LD. ``distribution`` has one FileSet per format built
  (plus the NIfTI sidecars) and one FileObject per manifest with its SHA-256; ``recordSet`` has
  the splits (``cr:Split``), the members with their split as inline data, so a reader gets the
  split table without touching a file, and one record set per format whose records come from
  the file paths (the split is the folder after the format's name).
- ``DATASHEET.md``: the same facts for people: counts per split by modality, body part and
  manufacturer; the requests, protocols and de-identification it came from; the Delta versions
  read; the selection and its hash; the exclusions and why.

Both are deterministic (no time, no user) and hold only de-identified values.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lakehouse.datasets import layout
from lakehouse.datasets.manifests import build_manifests, json_bytes, members_by_split, split_order
from lakehouse.datasets.model import Member, VersionContents

CROISSANT_CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
# The Croissant 1.0 JSON-LD context, as mlcroissant (the reference implementation) writes it.
CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
CROISSANT_SPLITS = {"train": "cr:TrainingSplit", "val": "cr:ValidationSplit", "test": "cr:TestSplit"}
LICENSE = "Restricted: governed research data, usable only under the source requests in DATASHEET.md."


@dataclass(frozen=True)
class _FileKind:
    """A FileSet of the version and the record set read from it: the file name gives
    ``name_field`` (first regex group), the folder after the format's name gives the split."""

    file_set: str
    description: str
    encoding: str
    includes: str
    name_field: str
    name_regex: str
    content_type: str | None = None  # a field with the file's content, when a reader decodes it


# NIfTI records come from the sidecars: mlcroissant reads JSON but has no NIfTI reader, and each
# sidecar sits beside its volume (<case>.json -> <case>_0000.nii.gz).
# Per format: its FileSets; the format's record set reads the last one.
_FILE_KINDS: dict[str, tuple[_FileKind, ...]] = {
    "dicom": (
        _FileKind(
            "dicom-files",
            "The DICOM objects.",
            "image/dicom",  # mlcroissant's name for DICOM (IANA registers application/dicom)
            "dicom/*/*/*/*/*.dcm",
            "sop_instance_uid",
            r"^(.+)\.dcm$",
        ),
    ),
    "nifti": (
        _FileKind(
            "nifti-files",
            "One volume per series (<case>_0000.nii.gz).",
            "application/gzip",
            "nifti/*/*.nii.gz",
            "case",
            r"^(c[0-9a-f]+)_0000\.nii\.gz$",
        ),
        _FileKind(
            "nifti-sidecars",
            "Per volume: slice index -> SOP Instance UID, geometry, converter.",
            "application/json",
            "nifti/*/*.json",
            "case",
            r"^(c[0-9a-f]+)\.json$",
        ),
    ),
    "png": (
        _FileKind(
            "png-files",
            "2D images, one per slice or frame, in the window recorded per image.",
            "image/png",
            "png/*/*/*/*.png",
            "sop_instance_uid",
            r"^(.+?)(?:_f[0-9]{4})?\.png$",
            "sc:ImageObject",
        ),
    ),
}
_UNRECORDED = "(not recorded)"


def build_card(contents: VersionContents) -> dict[str, bytes]:
    """``layout.CROISSANT`` and ``layout.DATASHEET`` -> bytes."""
    return {
        layout.CROISSANT: json_bytes(croissant(contents)),
        layout.DATASHEET: datasheet(contents).encode("utf-8"),
    }


def croissant(contents: VersionContents) -> dict[str, Any]:
    """The Croissant 1.0 document of ``contents`` (see the module docstring for its parts)."""
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CROISSANT_CONFORMS_TO,
        "name": f"{contents.project}/{contents.name}",
        "description": _summary(contents),
        "license": LICENSE,
        "isLiveDataset": False,
        "keywords": ["medical imaging", "labeling", *contents.formats],
        "distribution": _distribution(contents),
        "recordSet": _record_sets(contents),
    }


def _summary(contents: VersionContents) -> str:
    counts = ", ".join(f"{split} {len(ms)}" for split, ms in members_by_split(contents).items())
    return (
        f"Labeling dataset {contents.name} of project {contents.project}: "
        f"{len(contents.members)} de-identified {contents.unit} members ({counts}), "
        f"formats {', '.join(contents.formats) or 'none'}; split by pseudonymous patient."
    )


def _distribution(contents: VersionContents) -> list[dict[str, Any]]:
    distribution: list[dict[str, Any]] = []
    for fmt in contents.formats:
        for kind in _FILE_KINDS[fmt]:
            distribution.append(
                {
                    "@type": "cr:FileSet",
                    "@id": kind.file_set,
                    "name": kind.file_set,
                    "description": kind.description,
                    "encodingFormat": kind.encoding,
                    "includes": kind.includes,
                }
            )
    for path, data in sorted(build_manifests(contents).items()):
        distribution.append(
            {
                "@type": "cr:FileObject",
                "@id": path,
                "name": path,
                "contentUrl": path,
                "encodingFormat": "application/json",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return distribution


def _field(record_set: str, name: str, data_type: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "@type": "cr:Field",
        "@id": f"{record_set}/{name}",
        "name": name,
        "description": description,
        "dataType": data_type,
        **extra,
    }


def _record_sets(contents: VersionContents) -> list[dict[str, Any]]:
    record_sets = [_splits_record_set(contents)]
    if contents.members:
        record_sets.append(_members_record_set(contents))
    record_sets.extend(_files_record_set(fmt) for fmt in contents.formats)
    return record_sets


def _splits_record_set(contents: VersionContents) -> dict[str, Any]:
    return {
        "@type": "cr:RecordSet",
        "@id": "splits",
        "name": "splits",
        "description": "The splits, with their target ratio of patients.",
        "dataType": "cr:Split",
        "key": {"@id": "splits/name"},
        "field": [
            _field("splits", "name", "sc:Text", "Split name as used in folder names."),
            _field("splits", "url", "sc:URL", "The Croissant split it stands for, when one does."),
            _field("splits", "ratio", "sc:Float", "Target share of patients."),
        ],
        "data": [
            {
                "splits/name": split,
                "splits/url": CROISSANT_SPLITS.get(split),
                "splits/ratio": contents.splits.get(split),
            }
            for split in split_order(contents)
        ],
    }


_MEMBER_FIELDS: tuple[tuple[str, str, str, Callable[[Member], Any]], ...] = (
    (
        "member_id",
        "sc:Text",
        "SeriesInstanceUID (or StudyInstanceUID for study members).",
        lambda m: m.member_id,
    ),
    ("patient_id", "sc:Text", "The project's pseudonymous PatientID.", lambda m: m.patient_id),
    ("study_instance_uid", "sc:Text", "De-identified StudyInstanceUID.", lambda m: m.study_instance_uid),
    ("split", "sc:Text", "The split the patient is in.", lambda m: m.split),
    ("modality", "sc:Text", "Modality (0008,0060).", lambda m: m.modality),
    ("body_part", "sc:Text", "Body Part Examined (0018,0015).", lambda m: m.body_part),
    ("manufacturer", "sc:Text", "Manufacturer (0008,0070).", lambda m: m.manufacturer),
    ("series", "sc:Integer", "Number of series.", lambda m: len(m.series_instance_uids)),
    ("instances", "sc:Integer", "Number of instances.", lambda m: len(m.instances)),
)


def _members_record_set(contents: VersionContents) -> dict[str, Any]:
    fields = []
    for name, data_type, description, _ in _MEMBER_FIELDS:
        extra = {"references": {"field": {"@id": "splits/name"}}} if name == "split" else {}
        fields.append(_field("members", name, data_type, description, **extra))
    members = [m for ms in members_by_split(contents).values() for m in ms]
    return {
        "@type": "cr:RecordSet",
        "@id": "members",
        "name": "members",
        "description": f"One record per {contents.unit} member, with its split.",
        "key": {"@id": "members/member_id"},
        "field": fields,
        "data": [{f"members/{name}": get(m) for name, _, _, get in _MEMBER_FIELDS} for m in members],
    }


def _files_record_set(fmt: str) -> dict[str, Any]:
    kind = _FILE_KINDS[fmt][-1]

    def source(prop: str, regex: str | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {"fileSet": {"@id": kind.file_set}, "extract": {"fileProperty": prop}}
        if regex:
            found["transform"] = {"regex": regex}
        return found

    split_regex = rf"^(?:.*/)?{fmt}/([^/]+)/.*$"
    fields = [
        _field(fmt, "path", "sc:Text", "Path of the file.", source=source("fullpath")),
        _field(fmt, "split", "sc:Text", "Split, from the folder.", source=source("fullpath", split_regex)),
        _field(
            fmt, kind.name_field, "sc:Text", "From the file name.", source=source("filename", kind.name_regex)
        ),
    ]
    if kind.content_type:
        fields.append(
            _field(fmt, "content", kind.content_type, "The file's content.", source=source("content"))
        )
    return {
        "@type": "cr:RecordSet",
        "@id": fmt,
        "name": fmt,
        "description": f"One record per file of {kind.file_set}, with its split.",
        "field": fields,
    }


def datasheet(contents: VersionContents) -> str:
    """DATASHEET.md: Markdown, one section per question a reviewer or labeler asks."""
    grouped = members_by_split(contents)
    splits = list(grouped)
    lines = [
        f"# Datasheet: {_text(contents.project)}/{_text(contents.name)}",
        "",
        _text(_summary(contents)),
        "",
        "## Composition",
        "",
        f"- Unit: {contents.unit}",
        f"- Formats: {', '.join(contents.formats) or 'none'}",
        f"- Manifests: {', '.join(contents.manifests) or 'none'}",
        f"- PNG window: {_text(contents.window)}",
        f"- Stratified by: {', '.join(map(_text, contents.stratify)) or 'nothing'}",
        f"- Frozen splits: {', '.join(map(_text, contents.frozen)) or 'none'}",
        f"- Built by: {_tool(contents.tool)}",
        "",
        "## Splits",
        "",
        "Split assignment is per pseudonymous patient and stable across versions.",
        "",
        _table(
            ["split", "target", "patients", "members", "series", "instances", "nifti volumes", "png images"],
            [
                [
                    split,
                    _ratio(contents.splits.get(split)),
                    len({m.patient_id for m in ms}),
                    len(ms),
                    sum(len(m.series_instance_uids) for m in ms),
                    sum(len(m.instances) for m in ms),
                    sum(len(m.nifti) for m in ms),
                    sum(len(m.png) for m in ms),
                ]
                for split, ms in grouped.items()
            ],
        ),
    ]
    for title, get in (
        ("modality", lambda m: m.modality),
        ("body part", lambda m: m.body_part),
        ("manufacturer", lambda m: m.manufacturer),
    ):
        lines += ["", f"## Members per split by {title}", "", _counts_table(title, grouped, splits, get)]
    lines += ["", "## Source requests", ""]
    lines += [
        _table(
            ["request", "protocol", "purpose", "de-identification profile", "options"],
            [
                [r.request_id, r.protocol, r.purpose, r.deid_profile, ", ".join(r.deid_options) or "none"]
                for r in sorted(contents.requests, key=lambda r: r.request_id)
            ],
        )
        if contents.requests
        else "None recorded."
    ]
    lines += ["", "## Source Delta versions", ""]
    lines += [_table(["table", "version"], [[t, v] for t, v in sorted(contents.sources.items())])]
    lines += [
        "",
        "## Selection",
        "",
        f"Kind: {_text(contents.selection_kind)}; SHA-256: `{_text(contents.selection_sha256)}`",
        "",
        *_fenced(contents.selection_text, "sql" if contents.selection_kind == "sql" else "yaml"),
        "",
        "## Exclusions",
        "",
    ]
    lines += _exclusions(contents)
    return "\n".join(lines) + "\n"


def _exclusions(contents: VersionContents) -> list[str]:
    if not contents.exclusions:
        return ["None: every selected series became every requested format."]
    by_code = Counter((e.format, e.code) for e in contents.exclusions)
    ordered = sorted(
        contents.exclusions, key=lambda e: (e.format, e.code, e.member_id, e.series_instance_uid or "")
    )
    return [
        _table(["format", "reason code", "count"], [[f, c, n] for (f, c), n in sorted(by_code.items())]),
        "",
        _table(
            ["member", "series", "format", "reason code", "reason"],
            [[e.member_id, e.series_instance_uid or "", e.format, e.code, e.reason] for e in ordered],
        ),
    ]


def _counts_table(
    title: str, grouped: dict[str, list[Member]], splits: list[str], get: Callable[[Member], str | None]
) -> str:
    counts = {split: Counter(get(m) or _UNRECORDED for m in ms) for split, ms in grouped.items()}
    values = sorted({v for c in counts.values() for v in c})
    rows: list[list[Any]] = [
        [value, *(counts[s][value] for s in splits), sum(counts[s][value] for s in splits)]
        for value in values
    ]
    return _table([title, *splits, "total"], rows) if rows else "No members."


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_text(str(cell)) for cell in row) + " |" for row in rows]
    return "\n".join(out)


_UNSAFE = re.compile(r"[\\|<>*_`\[\]]")


def _text(value: str) -> str:
    """One line of Markdown that shows ``value`` as text: no table breaks, no markup, no HTML."""
    return _UNSAFE.sub(lambda m: "\\" + m.group(0), " ".join(value.split()))


def _fenced(text: str, language: str) -> list[str]:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text.rstrip("\n"), fence]


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _tool(tool: dict[str, Any]) -> str:
    if not tool:
        return _UNRECORDED
    return _text(
        " ".join(str(tool[k]) for k in ("name", "version") if k in tool) or str(sorted(tool.items()))
    )
