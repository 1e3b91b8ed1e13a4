"""A synthetic archive: patients → studies → series → instances, as (key, bytes).

Per patient: a CT study (one CT series, a text SR and a key object selection
referencing CT slices), plus one more study in turn: MR (implicit VR), CR (RLE
Lossless) with a secondary capture, or an RGB ultrasound cine with burned-in
annotation. Three patients or more cover every kind.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from lakehouse.errors import ConfigError
from lakehouse.synth import objects
from lakehouse.synth.identity import patient as make_patient
from lakehouse.synth.identity import site as make_site
from lakehouse.synth.modules import Study

LAYOUTS = ("hierarchical", "opaque")
_PROCEDURES = {
    "CT": ("CHEST", "CT Chest with contrast", ("24627-2", "LN", "CT Chest")),
    "MR": ("HEAD", "MR Brain without contrast", ("24590-2", "LN", "MR Brain")),
    "CR": ("CHEST", "XR Chest PA", ("36554-4", "LN", "XR Chest")),
    "US": ("ABDOMEN", "US Abdomen complete", ("24558-9", "LN", "US Abdomen")),
}


def generate_archive(
    *, patients: int, seed: int = 0, layout: str = "hierarchical", ct_size: int = 64, ct_slices: int = 4
) -> Iterator[tuple[str, bytes]]:
    """Yield (key, DICOM file bytes) for every object; the same arguments give the same bytes."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if patients < 0 or ct_size < 8 or ct_slices < 1:
        raise ConfigError("patients must be >= 0, ct_size >= 8 and ct_slices >= 1")
    for index in range(patients):
        for ds in _patient_objects(seed, index, ct_size, ct_slices):
            yield _key(ds, layout, seed), _encode(ds)


def synthesize_archive(
    root: Path,
    *,
    patients: int,
    seed: int = 0,
    layout: str = "hierarchical",
    ct_size: int = 64,
    ct_slices: int = 4,
) -> list[str]:
    """Write the archive under ``root``; returns the keys written (existing files are replaced)."""
    keys = []
    for key, data in generate_archive(
        patients=patients, seed=seed, layout=layout, ct_size=ct_size, ct_slices=ct_slices
    ):
        path = Path(root).joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        keys.append(key)
    return keys


def _patient_objects(seed: int, index: int, ct_size: int, ct_slices: int) -> Iterator[Dataset]:
    rng = random.Random(f"lakehouse-synth:{seed}:{index}")
    np_rng = np.random.default_rng([seed, index])
    who = make_patient(rng, index)
    where = make_site(rng)

    def uid(*parts: object) -> str:
        return generate_uid(entropy_srcs=["lakehouse-synth", str(seed), str(index), *map(str, parts)])

    def study(n: int, modality: str) -> Study:
        body, description, procedure = _PROCEDURES[modality]
        when = datetime(2015, 1, 5, 8) + timedelta(days=rng.randrange(0, 3600), minutes=rng.randrange(0, 600))
        return Study(
            uid=uid("study", n),
            patient=who,
            site=where,
            when=when,
            accession=f"A{rng.randrange(10**8, 10**9)}",
            study_id=str(rng.randrange(1000, 99999)),
            description=description,
            body_part=body,
            procedure_code=procedure,
        )

    ct = study(1, "CT")
    ct_series = uid("series", 1, "ct")
    ct_refs = []
    for i in range(ct_slices):
        ds = objects.ct_slice(ct, ct_series, uid("sop", 1, "ct", i), i, ct_size, rng, np_rng)
        ct_refs.append((objects.CT_IMAGE, ds.SOPInstanceUID))
        yield ds
    evidence = {ct_series: ct_refs}
    yield objects.text_report(ct, uid("series", 1, "sr"), uid("sop", 1, "sr"), evidence, rng)
    yield objects.key_objects(ct, uid("series", 1, "ko"), uid("sop", 1, "ko"), {ct_series: ct_refs[:2]}, rng)

    kind = index % 3
    if kind == 0:
        mr = study(2, "MR")
        mr_series = uid("series", 2, "mr")
        for i in range(3):
            yield objects.mr_slice(mr, mr_series, uid("sop", 2, "mr", i), i, rng, np_rng)
    elif kind == 1:
        cr = study(2, "CR")
        yield objects.cr_image(cr, uid("series", 2, "cr"), uid("sop", 2, "cr"), rng, np_rng)
        yield objects.secondary_capture(cr, uid("series", 2, "sc"), uid("sop", 2, "sc"), rng, np_rng)
    else:
        us = study(2, "US")
        yield objects.us_cine(us, uid("series", 2, "us"), uid("sop", 2, "us"), rng, np_rng)


def _key(ds: Dataset, layout: str, seed: int) -> str:
    if layout == "hierarchical":
        return f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    digest = hashlib.sha256(f"{seed}:{ds.SOPInstanceUID}".encode()).hexdigest()
    return f"{digest[:2]}/{digest[2:4]}/{digest[4:36]}"


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
