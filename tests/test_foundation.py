"Cross-notebook checks of the foundation: what the core modules import, what importing them leaves alone, id checks."
import subprocess, sys
import pytest
from conftest import run_blocked
import torch
from fourier_nb.config import Config
from fourier_nb.model import SentenceEncoder

HEAVY = ['numpy', 'pandas', 'pyarrow', 'tokenizers', 'fastcore', 'nbdev', 'matplotlib', 'seaborn', 'yaml',
         'safetensors', 'datasets', 'scipy', 'tqdm', 'papermill']

def test_core_modules_need_only_torch_and_stdlib():
    "fourier, model and config import with every third-party package but torch hidden (as on a bare GPU box)."
    code = """
import fourier_nb.config, fourier_nb.fourier, fourier_nb.model
m = fourier_nb.model.SentenceEncoder(fourier_nb.config.Config(d_model=32))
print('ok', m(torch.tensor([[101, 2000, 102]])).shape)
"""
    r = run_blocked(code, HEAVY)
    assert r.stdout.startswith('ok'), r.stderr

def test_import_changes_no_global_state():
    code = ("import torch; t, s = torch.get_num_threads(), torch.initial_seed(); import matplotlib as m; "
            "rc = dict(m.rcParams); import fourier_nb, fourier_nb.config, fourier_nb.fourier, fourier_nb.model; "
            "assert torch.get_num_threads() == t and torch.initial_seed() == s and dict(m.rcParams) == rc; print('ok')")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.stdout.strip() == 'ok', r.stderr

def test_out_of_range_id_raises_for_both_embeddings():
    for emb in ('fourier', 'learned'):
        m = SentenceEncoder(Config(embedding=emb, d_model=16))
        with pytest.raises(ValueError, match='token id 30522 is out of range for vocab_size V=30522'):
            m(torch.tensor([[101, 30522, 102]]))
