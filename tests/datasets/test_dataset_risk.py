"""A dataset version's k-anonymity: measured over what it publishes, recorded with the version
and in the audit (counts only), and a selection below [policy] min_k refused before any file."""

from __future__ import annotations

import json
import re

import pytest
from datasets_testing import PROJECT
from lakehouse_testing import Prepared, set_sections

from lakehouse import datasets, governance
from lakehouse.errors import Refused

CT = datasets.Selection("sql", "Modality = 'CT'")


def build(lh: Prepared, name: str) -> datasets.BuildResult:
    return datasets.build_dataset(
        lh.settings, datasets.BuildOptions(project=PROJECT, name=name, selection=CT), user="cora"
    )


def test_a_version_records_its_k_and_the_audit_its_counts(lh: Prepared) -> None:
    result = build(lh, "ct")
    risk = result.version.details["risk"]
    assert risk["floor_off"] is True and risk["generalizations"] == [] and risk["refusal"] is None
    assert risk["before"]["patients"] == 8
    # research rows keep the shifted study year, modality, body part and the device (the export's options)
    assert {"study year", "modality", "body part", "manufacturer"} <= set(risk["before"]["quasi_identifiers"])
    assert "sex" not in risk["before"]["quasi_identifiers"]  # emptied by the profile: no value to count
    event = [e for e in governance.list_audit(lh.settings) if e.action == "dataset.build"][-1]
    assert event.details["risk_k_before"] == risk["before"]["k"]
    assert event.details["risk_patients"] == 8
    stored = json.loads((lh.root / "datasets" / PROJECT / "ct" / "v1" / "version.json").read_text())
    assert stored["risk"] == risk


def test_a_selection_below_the_floor_is_refused_and_writes_nothing(lh: Prepared) -> None:
    set_sections(lh.config, policy={"min_k": 9})
    with pytest.raises(Refused) as refused:
        build(lh, "ct")
    assert str(refused.value) == (
        "dataset ct may not be built: the cohort has fewer than min_k 9 patients: no generalization can reach the floor"
    )
    set_sections(lh.config, policy={"min_k": 2})
    with pytest.raises(Refused) as refused:
        build(lh, "ct")
    assert re.fullmatch(
        r"dataset ct may not be built: k = 1 stays below min_k 2 with no generalization: "
        r"(study year|modality|body part|manufacturer|model|the kept attributes together) leaves \d+ classes below 2",
        str(refused.value),
    ), str(refused.value)
    assert datasets.list_versions(lh.settings, PROJECT) == []
    assert not (lh.root / "datasets" / PROJECT / "ct").exists()
