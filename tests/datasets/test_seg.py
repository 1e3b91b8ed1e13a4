"""NIfTI label map -> DICOM SEG -> label volume, voxel for voxel, on every series shape the dataset
build converts; every SEG frame references the source slice it was drawn on; highdicom reads the
SEG back and dciodvfy finds no error in it."""

from __future__ import annotations

import io
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from image_series import SAGITTAL, enhanced_ct, oblique, part10, stack, uid

from lakehouse.datasets.labels import check_geometry, default_label_map, parse_label_map
from lakehouse.datasets.model import Unconvertible
from lakehouse.datasets.nifti import label_map_nifti, series_to_nifti
from lakehouse.datasets.seg import read_seg, segment_stats, write_seg

LABEL_MAP = parse_label_map("""
category: [123037004, SCT, Anatomical Structure]
segments:
  - {number: 1, label: liver, type: [10200004, SCT, Liver]}
  - {number: 2, label: spleen, type: [78961009, SCT, Spleen]}
  - {number: 3, label: lesion, category: [49755003, SCT, Morphologically Altered Structure],
     type: [52988006, SCT, Lesion]}
""")
WRITE = {"series_instance_uid": "2.25.1111", "sop_instance_uid": "2.25.2222", "series_number": 9901,
         "annotator_id": "ann-3f9c2a", "content_label": "labels r1"}


def deidentified(datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """The synthetic objects with the patient/study context a de-identified object keeps."""
    out = []
    for ds in datasets:
        ds.PatientID, ds.PatientName, ds.PatientSex = "P7Q2", "P7Q2^", "O"
        ds.StudyDate, ds.StudyTime, ds.SeriesDate, ds.SeriesTime = "20200102", "101500", "20200102", "102030.25"
        ds.FrameOfReferenceUID = uid(ds.SeriesInstanceUID, "frame-of-reference")
        out.append(part10(ds, ds.SOPClassUID))
    return out


SERIES: dict[str, Callable[[], list[pydicom.Dataset]]] = {
    "axial": lambda: stack(7),
    "sagittal": lambda: stack(5, orientation=SAGITTAL, rows=4, columns=6),
    "oblique": lambda: stack(6, orientation=oblique(30)),
    "reversed_order": lambda: stack(6)[::-1],  # files in the opposite order of their positions
    "negative_gap": lambda: stack(5, gap=-3.0),  # positions run against the normal
    "multi_frame": lambda: [enhanced_ct(6)],
    "multi_frame_reversed": lambda: [enhanced_ct(5, reverse=True)],
}


@pytest.fixture(scope="module", params=sorted(SERIES))
def case(request: pytest.FixtureRequest) -> tuple[list[pydicom.Dataset], dict, np.ndarray, bytes]:
    sources = deidentified(SERIES[request.param]())
    sidecar = series_to_nifti(sources).sidecar
    rng = np.random.default_rng(13)
    volume = rng.choice(np.array([0, 0, 0, 1, 2, 3], dtype=np.uint16), size=tuple(sidecar["shape"]))
    volume[:, :, 1] = 0  # an empty slice: its frames are omitted and must come back empty
    label_volume = check_geometry(label_map_nifti(volume, sidecar), sidecar)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # highdicom warns on what it finds dubious: nothing may be
        seg = write_seg(label_volume, sources, sidecar["slices"], LABEL_MAP, **WRITE)
    return sources, sidecar, volume, seg


def test_label_map_round_trips_voxel_for_voxel(case: tuple) -> None:
    _, sidecar, volume, seg = case
    back, segments = read_seg(seg, sidecar["slices"], shape=sidecar["shape"])
    assert back.dtype == np.uint16 and np.array_equal(back, volume)
    assert segments == {s.number: s for s in LABEL_MAP.segments}


def test_every_frame_references_its_source_slice(case: tuple) -> None:
    sources, sidecar, volume, seg = case
    ds = hd.seg.segread(io.BytesIO(seg))
    by_uid = {s.SOPInstanceUID: s for s in sources}
    k_of = {(s["SOPInstanceUID"], s["frame"] + 1): s["index"] for s in sidecar["slices"]}
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    seen = set()
    for index, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        (source,) = item.DerivationImageSequence[0].SourceImageSequence
        frame = int(source.get("ReferencedFrameNumber", 1))
        k = k_of[(source.ReferencedSOPInstanceUID, frame)]  # KeyError: a frame on no source slice
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        assert np.array_equal(pixels[index] != 0, volume[:, :, k].T == number)
        position = item.PlanePositionSequence[0].ImagePositionPatient
        referenced = by_uid[source.ReferencedSOPInstanceUID]
        expected = (referenced.PerFrameFunctionalGroupsSequence[frame - 1].PlanePositionSequence[0]
                    .ImagePositionPatient if "PerFrameFunctionalGroupsSequence" in referenced
                    else referenced.ImagePositionPatient)
        assert np.allclose([float(v) for v in position], [float(v) for v in expected], atol=1e-4)
        seen.add((k, number))
    drawn = {(k, n) for k in range(volume.shape[2]) for n in (1, 2, 3) if (volume[:, :, k] == n).any()}
    assert seen == drawn  # one frame per drawn segment and slice, none for empty ones


def test_highdicom_reads_the_same_masks_by_source_reference(case: tuple) -> None:
    _, sidecar, volume, seg = case
    ds = hd.seg.segread(io.BytesIO(seg))
    slices = sidecar["slices"]
    if len({s["SOPInstanceUID"] for s in slices}) == len(slices):
        masks = ds.get_pixels_by_source_instance(
            [s["SOPInstanceUID"] for s in slices], combine_segments=True, assert_missing_frames_are_empty=True)
    else:
        masks = ds.get_pixels_by_source_frame(
            slices[0]["SOPInstanceUID"], [s["frame"] + 1 for s in slices], combine_segments=True,
            assert_missing_frames_are_empty=True)
    assert np.array_equal(masks, volume.transpose(2, 1, 0))
    assert ds.segmentation_type == hd.seg.SegmentationTypeValues.BINARY
    assert [d.segment_label for d in ds.SegmentSequence] == ["liver", "spleen", "lesion"]


def test_seg_carries_the_deidentified_context_and_fixed_dates(case: tuple) -> None:
    sources, sidecar, volume, seg = case
    ds = pydicom.dcmread(io.BytesIO(seg))
    assert (ds.PatientID, ds.StudyInstanceUID) == (sources[0].PatientID, sources[0].StudyInstanceUID)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert (ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SeriesNumber) == ("2.25.1111", "2.25.2222", 9901)
    assert (str(ds.ContentCreatorName), ds.ContentLabel) == ("ann-3f9c2a^", "LABELS R1")
    assert (ds.ContentDate, ds.ContentTime) == ("20200102", "102030")  # the series' date, not the clock
    assert "InstanceCreationDate" not in ds
    assert write_seg(volume, sources[::-1], sidecar["slices"], LABEL_MAP, **WRITE) == seg  # deterministic
    assert write_seg(volume, sources, sidecar["slices"], LABEL_MAP, **{**WRITE, "sop_instance_uid": "2.25.3"}) != seg


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy missing: apt-get install dicom3tools")
def test_dciodvfy_finds_no_error(case: tuple, tmp_path: Path) -> None:
    path = tmp_path / "seg.dcm"
    path.write_bytes(case[3])
    check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, errors="replace", check=False)
    errors = [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")]
    assert errors == []
    assert "Segmentation" in check.stdout + check.stderr


def test_segment_stats_count_voxels_and_millilitres() -> None:
    volume = np.zeros((4, 4, 4), dtype=np.uint16)
    volume[:2, :2, :2] = 1
    volume[3, 3, 3] = 3
    assert segment_stats(volume, (0.5, 0.5, 2.0)) == {1: (8, 0.004), 3: (1, 0.0005)}


def test_an_empty_label_volume_round_trips(axial: tuple) -> None:
    sources, sidecar = axial
    empty = np.zeros(tuple(sidecar["shape"]), dtype=np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom says it keeps the empty frames: a SEG needs one
        seg = write_seg(empty, sources, sidecar["slices"], default_label_map([1]), **WRITE)
    volume, segments = read_seg(seg, sidecar["slices"])
    assert not volume.any() and sorted(segments) == [1]


# --- refusals ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def axial() -> tuple[list[pydicom.Dataset], dict]:
    sources = deidentified(stack(4))
    return sources, series_to_nifti(sources).sidecar


def test_write_refuses_labels_the_map_does_not_name(axial: tuple) -> None:
    sources, sidecar = axial
    volume = np.zeros(tuple(sidecar["shape"]), dtype=np.uint16)
    volume[0, 0, 0] = 4
    with pytest.raises(Unconvertible) as refused:
        write_seg(volume, sources, sidecar["slices"], LABEL_MAP, **WRITE)
    assert refused.value.code == "unknown_label"
    with pytest.raises(Unconvertible) as refused:
        write_seg(volume[:, :, :2], sources, sidecar["slices"], LABEL_MAP, **WRITE)
    assert refused.value.code == "shape_mismatch"
    with pytest.raises(Unconvertible) as refused:
        write_seg(volume, sources[1:], sidecar["slices"], default_label_map([4]), **WRITE)
    assert refused.value.code == "unmatched_frames"


def test_read_refuses_a_seg_of_another_series(axial: tuple) -> None:
    sources, sidecar = axial
    volume = np.ones(tuple(sidecar["shape"]), dtype=np.uint16)
    seg = write_seg(volume, sources, sidecar["slices"], default_label_map([1]), **WRITE)
    other = series_to_nifti(deidentified(stack(4, series=uid("another series")))).sidecar
    with pytest.raises(Unconvertible, match="4 of 4 SEG frames") as refused:
        read_seg(seg, other["slices"])
    assert refused.value.code == "unmatched_frames"
    with pytest.raises(Unconvertible) as refused:
        read_seg(seg, sidecar["slices"], shape=(6, 5, 3))
    assert refused.value.code == "shape_mismatch"
    with pytest.raises(Unconvertible) as refused:
        read_seg(b"DICM but not really", sidecar["slices"])
    assert refused.value.code == "not_a_seg"


def _foreign_seg(sources: list[pydicom.Dataset], pixels: np.ndarray, kind: str, segments: int) -> bytes:
    """A SEG as another tool writes it with highdicom (stacked segments, any type)."""
    described = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=f"s{n}",
            segmented_property_category=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
            segmented_property_type=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n in range(1, segments + 1)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=kind, segment_descriptions=described,
        series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="other", manufacturer_model_name="other", software_versions="1", device_serial_number="1",
    )
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_read_refuses_fractional_and_overlapping_segs(axial: tuple) -> None:
    sources, sidecar = axial
    ordered = [next(s for s in sources if s.SOPInstanceUID == x["SOPInstanceUID"]) for x in sidecar["slices"]]
    frames = (len(ordered), int(ordered[0].Rows), int(ordered[0].Columns))
    fractional = _foreign_seg(ordered, np.full(frames, 0.5, dtype=np.float32), "FRACTIONAL", 1)
    with pytest.raises(Unconvertible) as refused:
        read_seg(fractional, sidecar["slices"])
    assert refused.value.code == "fractional_seg"
    overlapping = _foreign_seg(ordered, np.ones((*frames, 2), dtype=np.uint8), "BINARY", 2)
    with pytest.raises(Unconvertible) as refused:
        read_seg(overlapping, sidecar["slices"])
    assert refused.value.code == "overlapping_segments"


def test_read_takes_a_labelmap_seg_from_another_tool(axial: tuple) -> None:
    sources, sidecar = axial
    ordered = [next(s for s in sources if s.SOPInstanceUID == x["SOPInstanceUID"]) for x in sidecar["slices"]]
    planes = np.zeros((len(ordered), int(ordered[0].Rows), int(ordered[0].Columns)), dtype=np.uint8)
    planes[1, 2:4, 1:3] = 2
    planes[3, 0, 0] = 1
    volume, segments = read_seg(_foreign_seg(ordered, planes, "LABELMAP", 2), sidecar["slices"])
    assert np.array_equal(volume, planes.transpose(2, 1, 0))
    assert sorted(segments) == [1, 2]
