"""The review a governance officer reads before signing: criteria in words, counts by modality,
body part and study year with small-cell suppression, the profile and what each option keeps,
burned-in risk, opt-outs, overlap with earlier approved requests, unparseable objects; as text,
JSON and one static HTML file opened in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Lake, catalog_row, standard_catalog, write_catalog

from lakehouse import governance, resources
from lakehouse.config import Settings
from lakehouse.governance.review import build_review, cell, column_cells, criteria_in_words, option_notes

ENTRY = Path(sys.executable).with_name("lakehouse")
EXPIRES = datetime.now(UTC).date() + timedelta(days=30)
SCREENSHOT = Path("/work/coord/review.png")


def big_catalog() -> list[dict]:  # type: ignore[type-arg]
    """The standard catalog plus a CT study of 6 instances (PAT-4, 2022) and two unparseable
    objects, one of them inside a CT study of the cohort."""
    rows = standard_catalog()
    rows += [
        catalog_row(f"P4/S5/{i}.dcm", patient="PAT-4", study="1.2.3.105", series="1.2.3.105.1", study_date=date(2022, 2, 2))
        for i in range(6)
    ]
    rows += [
        catalog_row("P4/S5/broken.dcm", patient="", study="1.2.3.105", series="", parse_status="error",
                    parse_error="truncated: header ends early", study_date=None),
        catalog_row("loose/z.bin", patient="", study="", series="", parse_status="error",
                    parse_error="not_dicom: no preamble", study_date=None),
    ]
    return rows


@pytest.fixture
def reviewed(lake: Lake) -> tuple[Settings, governance.Request]:
    """A pending CT request of project lungs, after an approved earlier one that covers PAT-1,
    with PAT-2 opted out."""
    settings = lake.settings()
    write_catalog(settings, big_catalog())
    earlier = governance.submit_request(
        settings, user="alice", project="lungs", title="First CT", purpose="p", protocol="IRB-1",
        cohort={"patient_ids": ["PAT-1"]}, options=[],
    )
    governance.approve(settings, earlier.id, user="bob", expires=EXPIRES)
    governance.add_optout(settings, user="root", patient_id="PAT-2", reason="letter")
    request = governance.submit_request(
        settings, user="alice", project="lungs", title="Nodules <b>", purpose="Train a nodule detector",
        protocol="IRB-7", cohort={"modalities": ["CT"], "study_date_from": "2020-01-01", "patient_ids": ["PAT-1", "PAT-2", "PAT-4"]},
        options=["retain-modified-dates", "clean-descriptors"],
    )
    return settings, request


def test_small_cells_are_suppressed_and_zero_stays() -> None:
    assert [cell(n) for n in (0, 1, 4, 5, 48)] == ["0", "<5", "<5", "5", "48"]
    # One small cell beside published totals would be total minus the rest: the next smallest hides too.
    assert column_cells([6, 2, 30]) == ["≥5", "<5", "30"]
    assert column_cells([2, 3, 30]) == ["<5", "<5", "30"]  # two unknowns: no exact value to recompute
    assert column_cells([0, 7, 30]) == ["0", "7", "30"]
    assert column_cells([3]) == ["<5"]


def test_every_option_has_words_for_what_it_keeps() -> None:
    names = [o["name"] for o in resources.read_json("deid", "options.json")["options"]]
    assert [note.name for note in option_notes(names)] == sorted(names)
    assert all(note.keeps and note.meaning for note in option_notes(names))


def test_criteria_in_words_hide_identifiers() -> None:
    words = criteria_in_words(
        {
            "modalities": ["CT", "MR"], "body_parts": ["CHEST"], "study_date_from": "2024-01-01",
            "study_date_to": "2024-12-31", "description_contains": ["nodule"], "accession_numbers": ["A1", "A2"],
            "patient_ids": ["PAT-1"], "max_studies": 10, "sop_classes": ["1.2.840.10008.5.1.4.1.1.2"],
        }
    )
    assert words == [
        "modality is CT or MR",
        "body part examined is CHEST",
        "study date from 2024-01-01 to 2024-12-31",
        'study or series description contains "nodule" (any case)',
        "accession number is one of 2 listed (identifiers, not shown)",
        "patient is one of 1 listed (identifiers, not shown)",
        "at most 10 studies, earliest study date first",
        "SOP class is 1.2.840.10008.5.1.4.1.1.2",
    ]
    assert criteria_in_words({"study_date_to": "2024-12-31"}) == ["study date on or before 2024-12-31"]
    assert criteria_in_words({}) == ["every readable object in the catalog (no criteria)"]


def test_review_counts(reviewed: tuple[Settings, governance.Request]) -> None:
    settings, request = reviewed
    review = build_review(settings, request)
    # PAT-1: 2 CT instances in 2024; PAT-4: 6 in 2022; PAT-2 opted out (1 CT instance).
    assert review.totals == {"patients": "<5", "studies": "<5", "series": "<5", "instances": "8"}
    by = {b.attribute: b.rows for b in review.breakdowns}
    assert by["modality"] == [("CT", "<5", "8")]
    assert by["body part"] == [("CHEST", "<5", "8")]
    assert by["study year"] == [("2022", "<5", "≥5"), ("2024", "<5", "<5")]  # 8 - 6 would give 2024 away
    assert review.opted_out_excluded == "<5" and review.burned_in_risk == "0"
    assert review.unparseable == {"not_dicom": "<5", "truncated": "<5"}
    assert review.unparseable_in_cohort_studies == "<5"
    assert [(o.status, o.instances, o.patients) for o in review.overlaps] == [("approved", "<5", "<5")]
    assert [o.name for o in review.options] == ["clean-descriptors", "retain-modified-dates"]
    assert "per-patient offset" in review.options[1].keeps
    assert review.criteria[0] == "modality is CT" and "PAT-" not in json.dumps(review.to_dict())


def _lakehouse(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRY), *args, "--config", str(config)], capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "LAKEHOUSE_NO_PROGRESS": "1"},
    )


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_show_and_review_in_text_and_json(lake: Lake, reviewed: tuple[Settings, governance.Request]) -> None:
    _, request = reviewed
    shown = _lakehouse(lake.config, "request", "show", request.id, "--user", "bob")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for expected in (
        "  purpose: Train a nodule detector",
        "    - modality is CT",
        "    - patient is one of 3 listed (identifiers, not shown)",
        "<5 patients, <5 studies, <5 series, 8 instances",
        "    by study year: 2022 <5 studies/≥5 instances, 2024 <5 studies/<5 instances",
        "    by site: (none) <5 studies/8 instances",
        "  burned-in risk: 0 instances; opted-out instances excluded: <5",
        "    option retain-modified-dates (Retain Longitudinal Temporal Information Modified Dates Option) keeps:",
        "  objects the catalog could not parse (no criterion selects them): not_dicom <5, truncated <5;",
    ):
        assert expected in text, expected
    assert "PAT-" not in text and "Name^" not in text
    reviewed_json = _lakehouse(lake.config, "request", "review", request.id, "--user", "bob", "--json")
    assert json.loads(reviewed_json.stdout)["review"]["totals"]["instances"] == "8"


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_review_html_in_headless_chromium(lake: Lake, reviewed: tuple[Settings, governance.Request], tmp_path: Path) -> None:
    _, request = reviewed
    page = tmp_path / "review.html"
    done = _lakehouse(lake.config, "request", "review", request.id, "--html", str(page), "--user", "bob")
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "<script" not in html and "http" not in html.split("</style>", 1)[1]  # static, self-contained
    assert "Nodules &lt;b&gt;" in html  # escaped
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for expected in (
        f"Request review: {request.id}",
        "Train a nodule detector",
        "IRB-7",
        "modality is CT",
        '<td class="n">8</td>',
        "&lt;5",
        "Retain Longitudinal Temporal Information Modified Dates Option",
        "not_dicom",
        "Basic Application Confidentiality Profile",
    ):
        assert expected in dom, expected
    assert "PAT-" not in dom
    shot = tmp_path / "review.png"
    subprocess.run(
        [browser, *flags, "--window-size=1100,2600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )
    assert shot.stat().st_size > 10_000
    if SCREENSHOT.parent.is_dir():
        shutil.copyfile(shot, SCREENSHOT)
