"README.md is generated from nbs/index.ipynb (tools/readme.py, `make readme`): the two must never disagree."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_is_generated_from_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

def test_readme_figures_exist():
    "Every figure the README shows is committed under figures/."
    import re
    for path in re.findall(r'\]\((figures/[^)]+\.png)\)', (ROOT/'README.md').read_text()):
        assert (ROOT/path).is_file(), path
