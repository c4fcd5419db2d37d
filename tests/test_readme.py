"""The README's command-line walkthrough, run as written in an empty folder, and what it says it writes."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import xarray as xr

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough_commands() -> list[str]:
    text = README.read_text()
    marker = text.index("<!-- walkthrough:")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.S)
    assert block, "the README lost its walkthrough block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_walkthrough_runs_as_written(tmp_path):
    commands = walkthrough_commands()
    assert [c.split()[1] for c in commands] == ["example", "example", "fit", "score", "report"]
    bin_dir = str(Path(sys.executable).parent)  # the venv's console script rddpm-signals
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "OMP_NUM_THREADS": "2"}
    for command in commands:
        proc = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
    # the files the README lists
    for name in ("press.model", "result.nc", "segments.csv", "report/index.html"):
        assert (tmp_path / name).is_file(), name
    table = xr.open_dataset(tmp_path / "result.nc")
    assert table.sizes["record"] == 32
    n_flagged = int(table["flagged"].sum())
    assert len(list((tmp_path / "report").glob("*.png"))) == n_flagged
    table.close()
