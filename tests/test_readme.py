"""The README's examples run as written: its ``bash`` and ``python`` blocks, in order, as one
script in a temporary folder with the installed ``lakehouse`` on the PATH; a ``toml`` block is
merged into ``$LAKEHOUSE_CONFIG`` (its sections replace those of the file). A block right after
an ``<!-- not run ... -->`` comment is skipped (the two setup commands, spark-submit)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?P<skip><!-- not run[^\n]*-->\n)?```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.DOTALL)
MERGE_TOML = """
import re, sys
config, block = sys.argv[1], sys.argv[2]
text, new = open(config).read(), open(block).read()
for name in re.findall(r"^\\[([\\w.]+)\\]", new, re.M):
    text = re.sub(rf"^\\[{re.escape(name)}\\]\\n(?:[^\\[\\n].*\\n|\\n)*", "", text, flags=re.M)
open(config, "w").write(text.rstrip() + "\\n\\n" + new + "\\n")
"""


def readme_script(workdir: Path) -> tuple[str, int]:
    """The README's runnable blocks as one bash script, and how many blocks it skipped."""
    lines, skipped = ["set -euo pipefail"], 0
    for index, block in enumerate(BLOCK.finditer((REPO / "README.md").read_text())):
        lang, body = block["lang"], block["body"]
        if block["skip"]:
            skipped += 1
        elif lang == "bash":
            lines.append(body)
        elif lang in ("python", "toml"):
            file = workdir / f"readme-block-{index}.{'py' if lang == 'python' else 'toml'}"
            file.write_text(body + "\n")
            merge = f'python "{workdir / "merge_toml.py"}" "$LAKEHOUSE_CONFIG" '
            lines.append(f'python "{file}"' if lang == "python" else merge + f'"{file}"')
        else:
            raise AssertionError(f"README block {index} is {lang!r}: run it here or mark it <!-- not run -->")
    return "\n".join(lines) + "\n", skipped


def test_readme_examples_run(tmp_path: Path) -> None:
    (tmp_path / "merge_toml.py").write_text(MERGE_TOML)
    script, skipped = readme_script(tmp_path)
    assert skipped == 2 and script.count("lakehouse ") >= 15
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", LAKEHOUSE_NO_PROGRESS="1")
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path, env=env, timeout=900
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "purpose: Train a nodule detector" in done.stdout  # request show, in text
    assert '"ok": true' in done.stdout  # audit verify --json
    assert "Modality" in done.stdout  # the query example printed its table
