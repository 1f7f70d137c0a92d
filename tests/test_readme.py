"""README.md and results/README.md are generated from nbs/index.ipynb and nbs/results.ipynb, whose render cells read the
committed results/*.csv (tools/readme.py, `make readme`): a figure typed into a page, or a CSV changed without
re-rendering, makes the page differ from what its notebook and the CSVs give, and the first test fails with the diff."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_every_page_figure_matches_its_csv():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

def test_readme_figures_exist():
    "Every figure the README shows is committed under figures/."
    import re
    for path in re.findall(r'\]\((figures/[^)]+\.png)\)', (ROOT/'README.md').read_text()):
        assert (ROOT/path).is_file(), path
