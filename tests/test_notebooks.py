"""The query notebooks in notebooks/ run top to bottom against a real demo lake and show
what the tables hold: modality counts, the ConvolutionKernel search, a header rebuilt with
pydicom, time travel and the commit history."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import polars as pl
import pytest
from deltalake import DeltaTable

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL_NAME = "lakehouse-venv"
# What each notebook's plan cell shows when the keyword filter is pushed into the table scan.
PUSHDOWN_PLANS = {
    "query_duckdb.ipynb": """Filters:"keyword"='ConvolutionKernel'""",
    "query_polars.ipynb": 'SELECTION:col("keyword")==',
}


@pytest.fixture(scope="module")
def research_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo lake built once by the CLI (synthetic archive → catalog → approved export)."""
    root = tmp_path_factory.mktemp("notebooks") / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse", "demo", str(root), "--patients", "3", "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["export"]["status"] == "succeeded"
    return root / "research" / "demo" / "tables"


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A kernelspec for this interpreter (the venv's python), installed into a temp prefix so a
    clean venv needs no manual `ipykernel install` and no user-level Jupyter config is touched."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL_NAME, prefix=str(prefix))
    return [str(prefix / "share" / "jupyter" / "kernels")]


@pytest.fixture(scope="module")
def expected(research_tables: Path) -> dict[str, object]:
    """What the notebooks must show, read independently from the Delta tables."""
    instances = pl.read_delta(str(research_tables / "instances"))
    instances = instances.select("SOPInstanceUID", "Modality", "PixelSpacing").to_arrow().to_pylist()
    attributes = pl.read_delta(str(research_tables / "attributes")).select("keyword", "value_text").to_arrow()
    return {
        "modalities": Counter(row["Modality"] for row in instances),
        "sop_uids": {row["SOPInstanceUID"] for row in instances},
        "version": DeltaTable(str(research_tables / "instances")).version(),
        "rows": len(instances),
        "pixel_spacings": {str(value) for row in instances for value in row["PixelSpacing"] or []},
        "kernels": {
            row["value_text"] for row in attributes.to_pylist() if row["keyword"] == "ConvolutionKernel"
        },
    }


def execute(name: str, research_tables: Path, kernel_dirs: list[str], workdir: Path) -> nbformat.NotebookNode:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    manager = KernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs)
    )
    client = NotebookClient(notebook, km=manager, timeout=600, resources={"metadata": {"path": str(workdir)}})
    env = {
        **os.environ,
        "LAKEHOUSE_RESEARCH_TABLES": str(research_tables),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    client.execute(env=env)  # raises CellExecutionError on the first failing cell
    return notebook


def output_text(notebook: nbformat.NotebookNode, tag: str) -> str:
    """Printed and displayed (text/plain) output of the one cell carrying ``tag``."""
    [cell] = [c for c in notebook.cells if tag in c.get("metadata", {}).get("tags", [])]
    parts = []
    for output in cell.outputs:
        assert output.output_type != "error", output
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def check_outputs(notebook: nbformat.NotebookNode, expected: dict[str, object]) -> None:
    assert not [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]

    counts = output_text(notebook, "modality-counts")
    lines = counts.splitlines()
    modalities: Counter[str] = expected["modalities"]  # type: ignore[assignment]
    assert modalities, "the demo exported nothing"
    for modality, n in modalities.items():
        row = re.compile(rf"\b{re.escape(modality)}\b\W+{n}\b")
        assert any(row.search(line) for line in lines), (modality, n, counts)

    spacings: set[str] = expected["pixel_spacings"]  # type: ignore[assignment]
    assert any(spacing in output_text(notebook, "series-instances") for spacing in spacings)
    assert "CHEST 3mm" in output_text(notebook, "join")

    kernels: set[str] = expected["kernels"]  # type: ignore[assignment]
    search = output_text(notebook, "attribute-search")
    assert kernels and all(kernel in search for kernel in kernels), search
    assert "Finding" in search  # a concept name nested inside the SR ContentSequence

    header = output_text(notebook, "pydicom")
    [sop_uid] = re.findall(r"SOPInstanceUID: (\S+)", header)
    assert sop_uid in expected["sop_uids"]  # type: ignore[operator]
    assert "Modality: CT" in header and "PatientIdentityRemoved: YES" in header
    assert "Basic Application Confidentiality Profile" in header

    travel = output_text(notebook, "time-travel")
    assert "version 0: 0 rows" in travel
    assert f"version {expected['version']}: {expected['rows']} rows" in travel

    history = output_text(notebook, "history")
    assert "CREATE TABLE" in history and "WRITE" in history


@pytest.mark.parametrize("name", ["query_duckdb.ipynb", "query_polars.ipynb", "query_pandas.ipynb"])
def test_notebook_runs_and_shows_the_lake(
    name: str, research_tables: Path, kernel_dirs: list[str], expected: dict[str, object], tmp_path: Path
) -> None:
    notebook = execute(name, research_tables, kernel_dirs, tmp_path)
    check_outputs(notebook, expected)
    if name in PUSHDOWN_PLANS:
        plan = output_text(notebook, "pushdown-plan")
        assert PUSHDOWN_PLANS[name] in plan.replace(" ", ""), plan  # the filter sits inside the scan


@pytest.mark.spark
def test_spark_notebook_runs_and_shows_the_lake(
    research_tables: Path, kernel_dirs: list[str], expected: dict[str, object], tmp_path: Path
) -> None:
    check_outputs(execute("query_spark.ipynb", research_tables, kernel_dirs, tmp_path), expected)


def test_notebooks_are_committed_clean() -> None:
    """Every notebook is valid nbformat 4, has no outputs or execution counts, and is tested above."""
    names = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["query_duckdb.ipynb", "query_pandas.ipynb", "query_polars.ipynb", "query_spark.ipynb"]
    for name in names:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), name
        assert 8 <= len(notebook.cells) <= 17, (name, len(notebook.cells))
