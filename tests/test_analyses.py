"The analysis notebooks end to end: 07, 08 and 11 executed by papermill on two smoke runs trained here, in a sandbox."
import json, shutil, subprocess, sys
from pathlib import Path
import papermill as pm
import pytest
from conftest import run_blocked
from fourier_nb.config import Config, repo_root
from fourier_nb.data import cache_root, data_dir
from fourier_nb.cli import read_config_file
from fourier_nb.run import train_and_eval

ROOT = repo_root(Path(__file__).parent)
WIDGET = 'application/vnd.jupyter.widget-view+json'


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
    """A folder the notebooks take for the repo root (it holds a settings.ini): runs/, figures/ and results/ land there.
    Two smoke runs (Fourier, learned) are trained into its runs/ on one thread, reading the real data and token cache."""
    box = tmp_path_factory.mktemp('analyses')
    (box/'settings.ini').write_text('[DEFAULT]\n')
    mp = pytest.MonkeyPatch()
    with mp.context() as here:
        here.chdir(ROOT)                                     # data and cache paths resolve from the real repo root
        where = dict(data_dir=str(data_dir(Config())), cache_dir=str(cache_root(Config())))
    mp.setenv('FNB_DATA_DIR', where['data_dir'])             # for the notebooks' own tiny configs (kernels inherit it)
    smoke = read_config_file(ROOT/'configs'/'smoke.yaml') | where | dict(out_dir=str(box/'runs'), threads=1, max_steps=30)
    for name, emb in (('t-fourier', 'fourier'), ('t-learned', 'learned')):
        assert train_and_eval(Config.from_dict(smoke | dict(run_name=name, embedding=emb)), progress=False)['status'] == 'done'
    yield box
    mp.undo()


def execute(box: Path, name: str, **params) -> dict:
    """Run nbs/<name>.ipynb with papermill in the sandbox and return the executed notebook. A cell that gets no reply
    within a minute is retried once in a fresh kernel: nbclient can, rarely, miss the reply of a cell that displays
    ipywidgets and wait forever (jupyter/nbclient#312, jupyter/nbconvert#1921); every cell here takes seconds."""
    out = box/f'{name}.out.ipynb'
    for attempt in (1, 2):
        try:
            pm.execute_notebook(ROOT/'nbs'/f'{name}.ipynb', out, parameters=params, cwd=box, kernel_name='python3',
                                progress_bar=False, execution_timeout=60)
            return json.loads(out.read_text())
        except TimeoutError:                                  # nbclient's CellTimeoutError
            if attempt == 2: raise

def text_of(nb: dict) -> str:
    "Everything the code cells printed."
    return ''.join(''.join(o.get('text', '')) for c in nb['cells'] for o in c.get('outputs', []))


def test_spectra_notebook(sandbox):
    nb = execute(sandbox, '07_spectra', run_name='t-fourier', baseline_run='t-learned')
    for subject in ('linear-response', 'id-spectrum', 'sentence-sv'):
        assert (sandbox/'figures'/f'07_{subject}__t-fourier.png').stat().st_size > 10_000, subject
    out = text_of(nb)
    assert 'trained on dev-mix' in out and 'SNLI+MNLI train' not in out          # titles name the real training data
    assert 'learned table (t-learned)' in out


def test_spectra_notebook_without_baseline(sandbox):
    nb = execute(sandbox, '07_spectra', run_name='t-fourier', baseline_run='', max_tokens=4096)
    assert 't-learned' not in text_of(nb)


def test_geometry_notebook(sandbox):
    execute(sandbox, '08_geometry', run_name='t-fourier', baseline_run='t-learned', max_delta=128)
    for subject in ('similarity-hist', 'neighbour-cosine', 'align-uniform'):
        assert (sandbox/'figures'/f'08_{subject}__t-fourier.png').stat().st_size > 10_000, subject
    import pandas as pd
    table = pd.read_csv(sandbox/'results'/'08_geometry-table__t-fourier.csv', index_col='run')
    assert list(table.index) == ['t-fourier', 't-learned']
    assert table.separation_auc.between(0, 1).all() and (table.effective_rank > 1).all()


def test_explore_notebook_renders_widgets_headless(sandbox):
    nb = execute(sandbox, '11_explore', runs_dir=str(sandbox/'runs'))
    outs = [o for c in nb['cells'] for o in c.get('outputs', [])]
    assert not [o for o in outs if o['output_type'] == 'error']
    assert sum(WIDGET in o.get('data', {}) for o in outs) == 2                    # the two explorers
    # What the callbacks drew lives in the Output widgets' saved state: a figure and a neighbour table, no traceback.
    state = nb['metadata']['widgets']['application/vnd.jupyter.widget-state+json']['state'].values()
    drawn = [o for w in state if w['model_name'] == 'OutputModel' for o in w['state'].get('outputs', [])]
    kinds = {k for o in drawn for k in o.get('data', {})}
    assert {'image/png', 'text/html'} <= kinds, kinds
    assert not [o for o in drawn if o.get('output_type') == 'error']


def test_explore_notebook_in_a_fresh_checkout_trains_into_runs_test(tmp_path, monkeypatch):
    "No runs at all: the explorers train one smoke run into runs/_test, never beside the user's runs, and show it."
    (tmp_path/'settings.ini').write_text('[DEFAULT]\n')
    (tmp_path/'configs').symlink_to(ROOT/'configs')                          # the notebook reads configs/smoke.yaml
    with monkeypatch.context() as here:
        here.chdir(ROOT)                                                     # data and cache paths of the real repo
        data, cache = data_dir(Config()), cache_root(Config())
    cache.mkdir(parents=True, exist_ok=True)
    (tmp_path/'.cache').mkdir(); (tmp_path/'.cache'/'tokens').symlink_to(cache)   # the real token cache
    monkeypatch.setenv('FNB_DATA_DIR', str(data))                            # kernels inherit it
    nb = execute(tmp_path, '11_explore')
    assert [p.name for p in (tmp_path/'runs').iterdir()] == ['_test']
    assert f"1 runs under {tmp_path/'runs'/'_test'}: ['smoke-explore']" in text_of(nb)
    assert not [o for c in nb['cells'] for o in c.get('outputs', []) if o['output_type'] == 'error']


def test_sweep_notebook_collects_without_training(sandbox):
    "papermill runs `#| eval: false` cells too: the grid must stay off unless run_grid is passed."
    draft = sandbox/'runs'/'_draft'                                          # a '_' folder (like runs/_test): not collected
    draft.mkdir(); shutil.copy(sandbox/'runs'/'t-fourier'/'metrics.json', draft)
    try: nb = execute(sandbox, '10_sweep')
    finally: shutil.rmtree(draft)
    assert '2 finished runs' in text_of(nb)
    assert (sandbox/'figures'/'10_stsb-vs-params.png').stat().st_size > 10_000
    assert sorted(p.name for p in (sandbox/'runs').iterdir()) == ['t-fourier', 't-learned']   # nothing trained


def test_analysis_modules_need_only_torch_and_stdlib():
    "spectra and geometry import, and their pure functions run, with numpy, pandas, matplotlib & co. hidden."
    heavy = ['numpy', 'pandas', 'pyarrow', 'tokenizers', 'fastcore', 'matplotlib', 'seaborn', 'yaml', 'safetensors',
             'scipy', 'tqdm', 'papermill', 'ipywidgets']
    code = """
from fourier_nb.config import Config
from fourier_nb.model import SentenceEncoder
from fourier_nb.spectra import token_embeddings, id_spectrum, linear_weight, frequency_energy, singular_spectrum
from fourier_nb.geometry import anisotropy, effective_rank, uniformity, alignment, delta_cosine
E = token_embeddings(SentenceEncoder(Config(d_model=16)), 500)
print('ok', id_spectrum(E).shape[0], round(anisotropy(E), 3), delta_cosine(E, 4)[1].shape[0])
"""
    r = run_blocked(code, heavy)
    assert r.stdout.startswith('ok 251'), r.stderr
