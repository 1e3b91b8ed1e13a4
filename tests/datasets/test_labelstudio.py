"""Label Studio exports -> per-image masks, on tasks from a real ``labelstudio_tasks.json``.

Exports are hand-built in Label Studio's documented JSON export shape. Brush masks are encoded
here the way Label Studio's editor does (``@thi.ng/rle-pack`` over the RGBA canvas with the
opacity in every channel) and the encoder is checked against the reference decoder of Label
Studio's converter (``label_studio_converter.brush.decode_rle``, transcribed below: the package
pins an older numpy, so it is not installed). Images are 12 rows x 16 columns so a row/column
swap cannot pass.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from lakehouse.datasets import layout
from lakehouse.datasets.labelstudio import (
    BRUSH_ALPHA_THRESHOLD,
    ImageMask,
    decode_brush_rle,
    read_labelstudio_export,
)
from lakehouse.datasets.manifests import build_manifests
from lakehouse.datasets.model import Member, PngImage, VersionContents

ROWS, COLUMNS = 12, 16
SERIES, MULTIFRAME = "2.25.201", "2.25.202"


# --- the version's tasks, built by the manifest builder ------------------------------------------


def png(series: str, sop: str, frame: int, frames: int) -> PngImage:
    return PngImage(
        path=layout.png_path("train", "PAT1", series, sop, frame, frames), sop_instance_uid=sop,
        series_instance_uid=series, frame=frame, bits=8, window_center=40.0, window_width=400.0,
        rows=ROWS, columns=COLUMNS,
    )


def version_tasks() -> list[dict[str, Any]]:
    """Three single-frame slices of one series and two frames of a multi-frame object."""
    images = (*(png(SERIES, f"2.25.30{k}", 0, 1) for k in (1, 2, 3)), *(png(MULTIFRAME, "2.25.401", f, 2) for f in (0, 1)))
    member = Member(
        member_id="2.25.100", patient_id="PAT1", study_instance_uid="2.25.100", split="train", modality="CT",
        body_part=None, manufacturer=None, instances=(), png=images,
    )
    contents = VersionContents(
        project="p", name="ds", unit="study", splits={"train": 1.0}, formats=("png",), manifests=("labelstudio",),
        window="soft", selection_kind="sql", selection_text="", selection_sha256="", sources={}, requests=(),
        members=(member,),
    )
    tasks: list[dict[str, Any]] = json.loads(build_manifests(contents)["manifests/labelstudio_tasks.json"])
    return tasks


@pytest.fixture(scope="module")
def tasks() -> list[dict[str, Any]]:
    return version_tasks()


def task_of(tasks: list[dict[str, Any]], sop: str, frame: int = 0) -> dict[str, Any]:
    return next(t for t in tasks if t["meta"]["sop_instance_uid"] == sop and t["meta"]["frame"] == frame)


# --- Label Studio's export JSON ------------------------------------------------------------------


def exported(task: dict[str, Any], *annotations: dict[str, Any], task_id: int = 1) -> dict[str, Any]:
    """A task as Label Studio's JSON export writes it (data and meta as imported)."""
    return {
        "id": task_id, "data": dict(task["data"]), "meta": dict(task["meta"]), "project": 3,
        "created_at": "2024-05-02T10:00:00.000000Z", "updated_at": "2024-05-02T10:05:00.000000Z",
        "annotations": list(annotations), "predictions": [], "drafts": [],
    }


def annotation(*results: dict[str, Any], completed_by: Any = 7, cancelled: bool = False) -> dict[str, Any]:
    return {
        "id": 1001, "completed_by": completed_by, "result": list(results), "was_cancelled": cancelled,
        "ground_truth": False, "created_at": "2024-05-02T10:05:00.000000Z", "lead_time": 12.5, "task": 1,
    }


def region(kind: str, value: dict[str, Any], region_id: str = "r1", **extra: Any) -> dict[str, Any]:
    return {
        "id": region_id, "from_name": "label", "to_name": "image", "type": kind, "origin": "manual",
        "original_width": COLUMNS, "original_height": ROWS, "image_rotation": 0, "value": value, **extra,
    }


def brush(alpha: np.ndarray, label: str = "Liver", **extra: Any) -> dict[str, Any]:
    return region("brushlabels", {"format": "rle", "rle": brush_rle(alpha), "brushlabels": [label]}, **extra)


def polygon(points: list[list[float]], label: str = "Tumor", **extra: Any) -> dict[str, Any]:
    return region("polygonlabels", {"points": points, "closed": True, "polygonlabels": [label]}, **extra)


def rectangle(x: float, y: float, w: float, h: float, rotation: float = 0, label: str = "Box") -> dict[str, Any]:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]}
    return region("rectanglelabels", value)


def read(tasks: list[dict[str, Any]], *export_tasks: dict[str, Any]) -> list[ImageMask]:
    return read_labelstudio_export(json.dumps(list(export_tasks)).encode(), tasks)


# --- Label Studio's brush RLE (@thi.ng/rle-pack), written and read independently ----------------


def brush_rle(alpha: np.ndarray, color: tuple[int, int, int] | None = None) -> list[int]:
    """The editor's export: RGBA canvas bytes with the region's opacity in R, G, B and A; with
    ``color``, the legacy editor's canvas (the label's colour where painted, opacity in A)."""
    rgba = np.repeat(alpha.astype(np.uint8)[..., None], 4, axis=-1)
    if color is not None:
        rgba[alpha > 0, :3] = color
    return rle_encode(rgba.reshape(-1))


def rle_encode(values: np.ndarray, word: int = 8, sizes: tuple[int, ...] = (3, 4, 8, 16)) -> list[int]:
    """rle-pack's encoder: repeats for runs of 2 or more, literal chunks gather single values,
    both split at the longest length the widest size field holds."""
    longest = 1 << sizes[-1]
    bits = [f"{len(values):032b}", f"{word - 1:05b}", *(f"{s - 1:04b}" for s in sizes)]

    def length(n: int) -> str:  # size index, then n - 1 in the narrowest field that holds it
        index = next(i for i, s in enumerate(sizes) if n - 1 < 1 << s)
        return f"{index:02b}" + format(n - 1, f"0{sizes[index]}b")

    literal: list[int] = []

    def flush() -> None:
        while literal:
            chunk, literal[:] = literal[:longest], literal[longest:]
            bits.extend(["0", length(len(chunk)), *(format(v, f"0{word}b") for v in chunk)])

    starts = np.flatnonzero(np.diff(values, prepend=-1) != 0)
    for start, end in zip(starts, [*starts[1:], len(values)], strict=True):
        n, value = int(end - start), int(values[start])
        if n == 1:
            literal.append(value)
            continue
        flush()
        while n:
            take = min(n, longest)
            bits.extend(["1", length(take), format(value, f"0{word}b")])
            n -= take
    flush()
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return [int(text[i : i + 8], 2) for i in range(0, len(text), 8)]


def reference_decode(rle: list[int]) -> np.ndarray:
    """label_studio_converter.brush.decode_rle, as Label Studio ships it (bit string reader)."""
    text = "".join(f"{b:08b}" for b in rle)
    at = 0

    def read(n: int) -> int:
        nonlocal at
        at += n
        return int(text[at - n : at], 2)

    num = read(32)
    word = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        x = read(1)
        j = i + 1 + read(sizes[read(2)])
        if x:
            out[i:j] = read(word)
            i = j
        else:
            while i < j:
                out[i] = read(word)
                i += 1
    return out


def disk_alpha(rows: int = ROWS, columns: int = COLUMNS) -> np.ndarray:
    """A brush stroke with an anti-aliased rim: 255 inside, 200 and 90 on the edge."""
    r, c = np.mgrid[0:rows, 0:columns]
    distance = np.hypot(r - 5.5, c - 7.5)
    return np.select([distance < 3.5, distance < 4.0, distance < 4.5], [255, 200, 90], 0).astype(np.uint8)


def test_test_encoder_is_what_label_studio_decodes() -> None:
    alpha = disk_alpha()
    rgba = np.repeat(alpha.reshape(-1), 4)
    assert np.array_equal(reference_decode(brush_rle(alpha)), rgba)
    # long runs (over 2**16 values) and long literal chunks exercise every length field
    values = np.concatenate([np.zeros(70_000, np.uint8), np.arange(300, dtype=np.uint8) * 7 % 251,
                             np.full(20, 9, np.uint8)])
    assert np.array_equal(reference_decode(rle_encode(values)), values)


def test_brush_mask_is_the_painted_half_of_each_pixel(tasks: list[dict[str, Any]]) -> None:
    alpha = disk_alpha()
    masks = read(tasks, exported(task_of(tasks, "2.25.302"), annotation(brush(alpha))))
    assert len(masks) == 1
    mask = masks[0]
    assert (mask.sop_instance_uid, mask.frame, mask.label, mask.annotator) == ("2.25.302", 0, "Liver", "7")
    assert mask.mask.dtype == bool and mask.mask.shape == (ROWS, COLUMNS)
    assert np.array_equal(mask.mask, alpha >= BRUSH_ALPHA_THRESHOLD)
    assert mask.mask.sum() == int((alpha >= 200).sum()) > int((alpha == 255).sum())
    assert not mask.mask[alpha == 90].any()


def test_brush_decoder_reads_long_runs_and_literal_chunks() -> None:
    rows, columns = 200, 120  # 96,000 RGBA values: the empty rows run past one 2**16 field
    alpha = np.zeros((rows, columns), np.uint8)
    alpha[150, ::3] = 255
    alpha[160:170, 10:50] = 255
    for rle in (brush_rle(alpha), brush_rle(alpha, color=(255, 136, 0))):  # coloured: literal chunks
        mask = decode_brush_rle(bytes(rle), columns, rows)
        assert np.array_equal(mask, alpha > 0) and mask.sum() == 40 + 400


def test_brush_rle_is_refused_when_it_does_not_fit(tasks: list[dict[str, Any]]) -> None:
    rle = brush_rle(disk_alpha())
    task = task_of(tasks, "2.25.301")
    with pytest.raises(ValueError, match="disagrees with its original_width/original_height"):
        read(tasks, exported(task, annotation(brush(disk_alpha(), original_width=COLUMNS + 1))))
    truncated = region("brushlabels", {"format": "rle", "rle": rle[: len(rle) // 2], "brushlabels": ["Liver"]})
    with pytest.raises(ValueError, match="truncated"):
        read(tasks, exported(task, annotation(truncated)))
    not_bytes = region("brushlabels", {"format": "rle", "rle": [*rle, 300], "brushlabels": ["Liver"]})
    with pytest.raises(ValueError, match="not bytes"):
        read(tasks, exported(task, annotation(not_bytes)))


def test_polygon_pixels_are_those_whose_centre_is_inside(tasks: list[dict[str, Any]]) -> None:
    # a right triangle over the top-left 10 x 10 pixels: centres with x + y < 10, 45 pixels
    triangle = [[0.0, 0.0], [10 / COLUMNS * 100, 0.0], [0.0, 10 / ROWS * 100]]
    # a 4 x 4-pixel square with its edges on pixel edges: 16 pixels, not Pillow's 25
    square = [[12 / COLUMNS * 100, 2 / ROWS * 100], [1600 / COLUMNS, 2 / ROWS * 100],
              [1600 / COLUMNS, 6 / ROWS * 100], [12 / COLUMNS * 100, 6 / ROWS * 100]]
    masks = read(tasks, exported(task_of(tasks, "2.25.301"),
                                 annotation(polygon(triangle, "Tumor"), polygon(square, "Cyst", region_id="r2"))))
    by_label = {m.label: m.mask for m in masks}
    assert by_label["Tumor"].sum() == 45
    rows, columns = np.nonzero(by_label["Tumor"])
    assert ((rows + columns) <= 8).all()
    expected = np.zeros((ROWS, COLUMNS), bool)
    expected[2:6, 12:16] = True
    assert np.array_equal(by_label["Cyst"], expected)


def test_self_crossing_polygon_fills_like_the_canvas(tasks: list[dict[str, Any]]) -> None:
    # a pentagram drawn as one path: the canvas's non-zero rule fills its centre too
    angles = np.radians(-90 + 144 * np.arange(5))
    points = [[float(8 + 5.5 * np.cos(a)) / COLUMNS * 100, float(6 + 5.5 * np.sin(a)) / ROWS * 100] for a in angles]
    [mask] = read(tasks, exported(task_of(tasks, "2.25.301"), annotation(polygon(points))))
    assert mask.mask[5:7, 7:9].all()  # the pentagon in the middle (even-odd would leave it empty)


def test_rectangles_in_percent_of_the_image_with_rotation(tasks: list[dict[str, Any]]) -> None:
    plain = rectangle(2 / COLUMNS * 100, 3 / ROWS * 100, 4 / COLUMNS * 100, 2 / ROWS * 100, label="Box")
    # 3 x 2 pixels at (5, 2), turned 90 degrees clockwise about its top-left corner
    turned = rectangle(5 / COLUMNS * 100, 2 / ROWS * 100, 3 / COLUMNS * 100, 2 / ROWS * 100, 90, label="Turned")
    masks = read(tasks, exported(task_of(tasks, "2.25.303"), annotation(plain, turned)))
    by_label = {m.label: m.mask for m in masks}
    expected = np.zeros((ROWS, COLUMNS), bool)
    expected[3:5, 2:6] = True
    assert np.array_equal(by_label["Box"], expected)
    expected = np.zeros((ROWS, COLUMNS), bool)
    expected[2:5, 3:5] = True
    assert np.array_equal(by_label["Turned"], expected)


def test_frames_of_a_multiframe_object_map_to_their_own_task(tasks: list[dict[str, Any]]) -> None:
    alpha = disk_alpha()
    masks = read(
        tasks,
        exported(task_of(tasks, "2.25.401", 1), annotation(brush(alpha)), task_id=5),
        exported(task_of(tasks, "2.25.401", 0), annotation(rectangle(0, 0, 50, 50)), task_id=4),
    )
    assert [(m.sop_instance_uid, m.frame, m.label) for m in masks] == [("2.25.401", 0, "Box"), ("2.25.401", 1, "Liver")]
    assert masks[0].mask.sum() == 6 * 8


def test_the_manifest_not_the_export_says_which_slice(tasks: list[dict[str, Any]]) -> None:
    task = exported(task_of(tasks, "2.25.301"), annotation(rectangle(0, 0, 10, 10)))
    task["meta"] = {"sop_instance_uid": "2.25.999", "frame": 3}  # edited or stale meta in the export
    [mask] = read(tasks, task)
    assert (mask.sop_instance_uid, mask.frame) == ("2.25.301", 0)


def test_full_local_files_url_matches_its_task(tasks: list[dict[str, Any]]) -> None:
    task = exported(task_of(tasks, "2.25.301"), annotation(rectangle(0, 0, 25, 25)))
    task["data"]["image"] = "http://localhost:8080" + task["data"]["image"]
    [mask] = read(tasks, task)
    assert mask.sop_instance_uid == "2.25.301" and mask.mask.sum() == 3 * 4


def test_an_image_outside_the_version_refuses_the_export(tasks: list[dict[str, Any]]) -> None:
    known = exported(task_of(tasks, "2.25.301"), annotation(rectangle(0, 0, 10, 10)))
    stranger = exported(task_of(tasks, "2.25.302"), annotation(rectangle(0, 0, 10, 10)))
    stranger["data"]["image"] = "/data/local-files/?d=png/train/SECRET-PATIENT-NAME/0001.png"
    other = json.loads(json.dumps(stranger))
    other["data"]["image"] = "https://example.org/SECRET-PATIENT-NAME.png"
    with pytest.raises(ValueError, match="^2 tasks of the export name images that are not in this dataset version$") as err:
        read(tasks, known, stranger, other)
    assert "SECRET" not in str(err.value)


def test_annotators_are_kept_as_given_and_apart(tasks: list[dict[str, Any]]) -> None:
    task = task_of(tasks, "2.25.301")
    masks = read(
        tasks,
        exported(
            task,
            annotation(rectangle(0, 0, 25, 25), completed_by=7),
            annotation(rectangle(0, 0, 50, 50), completed_by={"id": 9, "email": "ann.reader@example.org",
                                                             "first_name": "Ann", "last_name": "Reader"}),
            annotation(rectangle(0, 0, 75, 75), completed_by=None),
        ),
    )
    assert [(m.annotator, int(m.mask.sum())) for m in masks] == [(None, 9 * 12), ("7", 3 * 4), ("ann.reader@example.org", 6 * 8)]


def test_regions_of_one_label_merge_per_image_and_annotator(tasks: list[dict[str, Any]]) -> None:
    left = rectangle(0, 0, 25, 25, label="Box")
    right = rectangle(50, 0, 25, 25, label="Box")
    overlapping = rectangle(0, 0, 50, 25, label="Box")
    [mask] = read(tasks, exported(task_of(tasks, "2.25.301"), annotation(left, right, overlapping)))
    assert mask.mask.sum() == 3 * 12


def test_shapes_with_a_separate_labels_tag(tasks: list[dict[str, Any]]) -> None:
    shape = region("polygon", {"points": [[0, 0], [50, 0], [50, 50], [0, 50]], "closed": True}, region_id="p1")
    labels = region("labels", {"points": [[0, 0], [50, 0], [50, 50], [0, 50]], "labels": ["Lesion", "Edema"]},
                    region_id="p1")
    masks = read(tasks, exported(task_of(tasks, "2.25.301"), annotation(shape, labels)))
    assert [(m.label, int(m.mask.sum())) for m in masks] == [("Edema", 6 * 8), ("Lesion", 6 * 8)]


def test_skipped_annotations_predictions_and_other_results_carry_no_masks(tasks: list[dict[str, Any]]) -> None:
    task = exported(
        task_of(tasks, "2.25.301"),
        annotation(rectangle(0, 0, 50, 50), cancelled=True),
        annotation({"id": "c1", "from_name": "quality", "to_name": "image", "type": "choices",
                    "value": {"choices": ["Good"]}}),
        annotation(polygon([[0, 0], [0, 0], [0, 0]])),  # degenerate: no pixel
    )
    task["predictions"] = [{"model_version": "m1", "result": [rectangle(0, 0, 50, 50)]}]
    unannotated = exported(task_of(tasks, "2.25.302"), task_id=2)
    assert read(tasks, task, unannotated) == []


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (region("ellipselabels", {"x": 50, "y": 50, "radiusX": 10, "radiusY": 5, "ellipselabels": ["Box"]}),
         "ellipse regions cannot be turned into masks"),
        (region("keypointlabels", {"x": 50, "y": 50, "keypointlabels": ["Box"]}), "keypoint regions"),
        (region("polygonlabels", {"points": [[0, 0], [50, 0], [50, 50]], "closed": False, "polygonlabels": ["T"]}),
         "open polygon"),
        (region("polygonlabels", {"points": [0, 0, 50, 0, 50, 50], "polygonlabels": ["T"]}), r"not \[x, y\] pairs"),
        (region("rectanglelabels", {"x": 0, "y": "a", "width": 5, "height": 5, "rectanglelabels": ["B"]}),
         "not numbers"),
        (region("rectanglelabels", {"x": 0, "y": 0, "width": 5, "height": 5, "rectanglelabels": []}), "no label"),
        (region("rectanglelabels", {"x": 0, "y": 0, "width": 5, "height": 5, "rectanglelabels": ["B"]},
                image_rotation=90), "rotated image"),
        (region("rectanglelabels", {"x": 0, "y": 0, "width": 5, "height": 5, "rectanglelabels": ["B"]},
                original_width=None), "original_width"),
        (region("brushlabels", {"format": "png", "rle": [1, 2], "brushlabels": ["B"]}), "RLE format"),
    ],
)
def test_regions_that_cannot_become_masks_refuse_the_export(
    tasks: list[dict[str, Any]], result: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        read(tasks, exported(task_of(tasks, "2.25.301"), annotation(result)))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x89PNG not json", "not JSON"),
        (b'{"annotations": []}', "not a Label Studio JSON export"),
        # JSON-MIN export: flat records without "data"
        (b'[{"image": "/data/local-files/?d=x.png", "label": []}]', "not a Label Studio JSON export"),
    ],
)
def test_other_files_are_not_taken_for_an_export(tasks: list[dict[str, Any]], data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        read_labelstudio_export(data, tasks)


def test_regions_disagreeing_on_the_image_size_refuse_the_export(tasks: list[dict[str, Any]]) -> None:
    wider = {**rectangle(0, 0, 50, 50), "original_width": COLUMNS * 2}
    with pytest.raises(ValueError, match="disagree on its size"):
        read(tasks, exported(task_of(tasks, "2.25.301"), annotation(rectangle(0, 0, 25, 25), wider)))
