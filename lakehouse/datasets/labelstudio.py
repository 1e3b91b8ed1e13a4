"""Label Studio export JSON -> one boolean mask per image, label and annotator.

The export is Label Studio's "JSON" export: a list of tasks, each with ``data.image`` and
``annotations[].result[]``. A task is matched to the dataset version by its image: the
``/data/local-files/?d=<path>`` URL that ``manifests/labelstudio_tasks.json`` gave it (the
decoded ``d`` value is compared, so a full ``http://host/data/local-files/?d=...`` URL matches
too). The version's task, not the export, says which SOP Instance UID and frame the image is:
an export can be edited, the manifest is the version's own record. An export naming any image
that is not one of the version's tasks is refused as a whole (the count is named, never a path).

Regions become masks on the image's pixel grid (rows x columns = ``original_height`` x
``original_width``). Label Studio coordinates are percents of the image edges, so pixel (r, c)
covers [c, c+1) x [r, r+1):

- ``brushlabels``: Label Studio's brush RLE (``@thi.ng/rle-pack`` over the RGBA canvas, the
  region's opacity in every channel), decoded here; a pixel is in the mask when its alpha is at
  least ``BRUSH_ALPHA_THRESHOLD`` (the stroke covers at least half of it: its anti-aliased rim
  is split the way a 50% area rule splits it).
- ``polygonlabels`` and ``rectanglelabels`` (``rotation`` in degrees, clockwise about the
  top-left corner): a pixel is in the mask when its centre is inside the shape, under the
  canvas's non-zero fill rule. Not Pillow's ``ImageDraw.polygon``: it also fills every pixel the
  outline touches, so a 4 x 4-pixel square comes back as 5 x 5 (+56%) and each region grows by
  a rim; centre sampling gives the area the labeler drew.
- The same shapes drawn with a separate ``<Labels>`` tag (result types ``brush``, ``polygon``,
  ``rectangle``) take their labels from the ``labels`` result with the same region id.

Cancelled (skipped) annotations, predictions and drafts are not labels and are left out; other
result types that are not regions (choices, text, ratings) are ignored. Region types that
cannot become masks (ellipses, key points, ...), open polylines, rotated images and malformed
values refuse the export with ``ValueError``. The annotator is the annotation's
``completed_by`` as the export gives it (a Label Studio user id, or the email of an embedded
user); the caller pseudonymizes it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

BRUSH_ALPHA_THRESHOLD = 128
"""Minimum brush alpha (0-255) of a mask pixel: at least half the pixel painted."""

_SHAPES = ("brush", "polygon", "rectangle")
_NOT_MASKS = ("ellipse", "keypoint", "polyline", "bitmask", "magicwand", "vector")
"""Region tags Label Studio has that are not turned into masks here (refused, not dropped)."""


@dataclass(frozen=True, eq=False)
class ImageMask:
    """One label on one image (a slice, or a frame of a multi-frame object) by one annotator;
    ``mask`` is boolean, rows x columns of the PNG the labeler saw."""

    sop_instance_uid: str
    frame: int
    label: str
    mask: np.ndarray
    annotator: str | None


def read_labelstudio_export(data: bytes, tasks: list[dict[str, Any]]) -> list[ImageMask]:
    """The masks of every completed annotation in ``data`` on the version's ``tasks``; regions
    with the same image, label and annotator are merged. Sorted by SOP Instance UID, frame,
    label and annotator. ``ValueError`` with a one-line reason when the export is refused."""
    exported = _parse_export(data)
    images = {_image_key(task["data"]["image"]): task["meta"] for task in tasks}
    unknown = sum(1 for task in exported if _image_key(task["data"].get("image")) not in images)
    if unknown:
        raise ValueError(f"{unknown} tasks of the export name images that are not in this dataset version")
    merged: dict[tuple[str, int, str, str | None], np.ndarray] = {}
    for task in exported:
        meta = images[_image_key(task["data"].get("image"))]
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            annotator = _annotator(annotation.get("completed_by"))
            for label, mask in _result_masks(annotation.get("result") or []):
                key = (str(meta["sop_instance_uid"]), int(meta["frame"]), label, annotator)
                if key in merged:
                    if merged[key].shape != mask.shape:
                        raise ValueError("regions on one image disagree on its size (original_width/height)")
                    mask = merged[key] | mask
                merged[key] = mask
    return [
        ImageMask(sop, frame, label, mask, annotator)
        for (sop, frame, label, annotator), mask in sorted(merged.items(), key=lambda item: _order(item[0]))
        if mask.any()
    ]


def _order(key: tuple[str, int, str, str | None]) -> tuple[str, int, str, str]:
    sop, frame, label, annotator = key
    return (sop, frame, label, annotator or "")


def _parse_export(data: bytes) -> list[dict[str, Any]]:
    try:
        exported = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not JSON: export the project as Label Studio \"JSON\"") from None
    if not isinstance(exported, list) or not all(
        isinstance(task, dict) and isinstance(task.get("data"), dict) for task in exported
    ):
        raise ValueError("not a Label Studio JSON export (a list of tasks with data and annotations)")
    return exported


def _image_key(url: object) -> str | None:
    """The image a task names: the decoded ``d`` of a local-files URL, else the decoded URL."""
    if not isinstance(url, str):
        return None
    d = parse_qs(urlsplit(url).query).get("d")
    return d[-1] if d else unquote(url)


def _annotator(completed_by: object) -> str | None:
    if isinstance(completed_by, dict):  # older exports embed the user
        completed_by = completed_by.get("email") or completed_by.get("id")
    if completed_by is None or completed_by == "":
        return None
    return str(completed_by)


def _result_masks(results: Sequence[Any]) -> Iterable[tuple[str, np.ndarray]]:
    """(label, mask) for every label of every region in one annotation's results."""
    side_labels: defaultdict[str, list[str]] = defaultdict(list)  # region id -> <Labels> values
    for result in results:
        if isinstance(result, dict) and result.get("type") == "labels":
            side_labels[str(result.get("id"))] += _labels(result.get("value"), "labels")
    for result in results:
        if not isinstance(result, dict):
            raise ValueError("an annotation result is not an object")  # noqa: TRY004 - a refusal, as the others
        kind = str(result.get("type") or "")
        shape = kind.removesuffix("labels")
        if shape not in _SHAPES:
            if shape in _NOT_MASKS:
                raise ValueError(
                    f"{shape} regions cannot be turned into masks: draw with brush, polygon or rectangle"
                )
            continue  # not a region: choices, text areas, ratings, relations, the labels above
        value = result.get("value")
        if not isinstance(value, dict):
            raise ValueError(f"a {kind} result has no value")  # noqa: TRY004 - a refusal, as the others
        labels = _labels(value, kind) if kind.endswith("labels") else side_labels.get(str(result.get("id")), [])
        if not labels:
            raise ValueError(f"a {kind} region carries no label")
        mask = _region_mask(shape, value, *_image_size(result))
        for label in dict.fromkeys(labels):
            yield label, mask


def _labels(value: object, key: str) -> list[str]:
    labels = value.get(key) if isinstance(value, dict) else None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        return []
    return labels


def _image_size(result: dict[str, Any]) -> tuple[int, int]:
    """(width, height) of the image the region was drawn on; rotated images are refused."""
    width, height = result.get("original_width"), result.get("original_height")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ValueError("a region carries no original_width/original_height")
    if result.get("image_rotation") not in (None, 0):
        raise ValueError("a region was drawn on a rotated image: reset the rotation in Label Studio")
    return width, height


def _region_mask(shape: str, value: dict[str, Any], width: int, height: int) -> np.ndarray:
    if shape == "brush":
        if value.get("format") != "rle" or not isinstance(value.get("rle"), list):
            raise ValueError("a brush region is not in Label Studio's RLE format")
        try:
            rle = bytes(value["rle"])
        except (TypeError, ValueError):
            raise ValueError("a brush region's RLE holds values that are not bytes") from None
        return decode_brush_rle(rle, width, height)
    if shape == "polygon":
        if value.get("closed") is False:
            raise ValueError("an open polygon has no area: close it in Label Studio")
        points = _numbers(value.get("points"), "polygon points")
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError("polygon points are not [x, y] pairs")
        return fill_polygon(points * [width / 100.0, height / 100.0], width, height)
    keys = ("x", "y", "width", "height", "rotation")
    x, y, w, h, rotation = _numbers([value.get(k, 0 if k == "rotation" else None) for k in keys], "rectangle values")
    corners = _rectangle_corners(x * width / 100.0, y * height / 100.0, w * width / 100.0, h * height / 100.0,
                                 math.radians(rotation))
    return fill_polygon(corners, width, height)


def _numbers(values: object, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} are not numbers") from None
    if array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{what} are missing or not finite")
    return array


def _rectangle_corners(x: float, y: float, w: float, h: float, angle: float) -> np.ndarray:
    """Corners in pixels of a rectangle rotated clockwise (y points down) about its top-left."""
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([(x, y), (x + w * cos, y + w * sin), (x + w * cos - h * sin, y + w * sin + h * cos),
                     (x - h * sin, y + h * cos)])


def fill_polygon(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boolean rows x columns mask of the pixels whose centre lies inside the polygon (pixel
    coordinates, pixel (r, c) centred at (c + 0.5, r + 0.5)), non-zero winding rule."""
    mask = np.zeros((height, width), dtype=bool)
    if len(points) < 3:
        return mask
    lo, hi = points.min(axis=0), points.max(axis=0)
    c0, c1 = max(0, math.ceil(lo[0] - 0.5)), min(width - 1, math.floor(hi[0] - 0.5))
    r0, r1 = max(0, math.ceil(lo[1] - 0.5)), min(height - 1, math.floor(hi[1] - 0.5))
    if c0 > c1 or r0 > r1:
        return mask
    xs = np.arange(c0, c1 + 1) + 0.5
    ys = np.arange(r0, r1 + 1) + 0.5
    winding = np.zeros((len(ys), len(xs)), dtype=np.int32)
    for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0), strict=True):
        if y1 == y2:
            continue
        rows = np.nonzero((np.minimum(y1, y2) <= ys) & (ys < np.maximum(y1, y2)))[0]
        crossing = x1 + (ys[rows] - y1) * (x2 - x1) / (y2 - y1)  # where the edge meets each row's centre line
        winding[rows] += np.where(y2 > y1, 1, -1) * (xs[None, :] < crossing[:, None])
    mask[r0 : r1 + 1, c0 : c1 + 1] = winding != 0
    return mask


def decode_brush_rle(rle: bytes, width: int, height: int) -> np.ndarray:
    """Label Studio's brush RLE -> boolean rows x columns mask (alpha >= ``BRUSH_ALPHA_THRESHOLD``).

    The stream (``@thi.ng/rle-pack``): value count (32 bits), word size - 1 (5), four run-length
    field sizes - 1 (4 each), then chunks: a repeat bit, a size index (2), the run length - 1 in
    that many bits, and one word (repeat) or that many words (literal). Values are RGBA bytes."""
    bits = _BitReader(rle)
    count = bits.read(32)
    if count != width * height * 4:
        raise ValueError("a brush mask's size disagrees with its original_width/original_height")
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    values = np.zeros(count, dtype=np.uint32)
    i = 0
    while i < count:
        repeat = bits.read(1)
        end = i + 1 + bits.read(sizes[bits.read(2)])
        if end > count:
            raise ValueError("a brush RLE runs past the end of its image")
        if repeat:
            values[i:end] = bits.read(word)
        else:
            values[i:end] = bits.read_words(end - i, word)
        i = end
    return values.reshape(height, width, 4)[:, :, 3] >= BRUSH_ALPHA_THRESHOLD


class _BitReader:
    """Most-significant-bit-first reads over a byte string."""

    def __init__(self, data: bytes) -> None:
        self._bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self._text = (self._bits + ord("0")).tobytes().decode("ascii")  # int(text, 2) reads fields fast
        self._at = 0

    def _take(self, n: int) -> int:
        start, self._at = self._at, self._at + n
        if self._at > len(self._bits):
            raise ValueError("a brush RLE is truncated")
        return start

    def read(self, n: int) -> int:
        start = self._take(n)
        return int(self._text[start : start + n], 2)

    def read_words(self, count: int, word: int) -> np.ndarray:
        start = self._take(count * word)
        chunk = self._bits[start : start + count * word].reshape(count, word).astype(np.uint64)
        return (chunk << np.arange(word - 1, -1, -1, dtype=np.uint64)).sum(axis=1)
