"Offline tests of fourier_nb.hub: folder round trips, clear errors for broken folders, Hub ids without the Hub."
import json, subprocess, sys, types
from pathlib import Path
import numpy as np
import pytest
import torch
import yaml
from fourier_nb.config import Config, repo_root
from fourier_nb.data import load_tokenizer
from fourier_nb.model import SentenceEncoder
from fourier_nb.checkpoint import MODEL_FILES, load_run
from fourier_nb.cli import config_from_args
from fourier_nb.run import train_and_eval
from fourier_nb.pairs import train_data_name
from fourier_nb.hub import export_run, from_pretrained, push_to_hub, save_pretrained

ROOT = repo_root(Path(__file__).parent)
S = ['A man plays a guitar.', 'A dog runs in the park.', 'Markets fell sharply in Asia today after the news.', 'Hi']

@pytest.fixture(scope='module')
def tok(): return load_tokenizer(Config())

def tiny(tok, **kw) -> SentenceEncoder:
    "A random-init encoder of width 32 with the real tokenizer."
    torch.manual_seed(0)
    m = SentenceEncoder(Config(run_name='tiny', d_model=32, n_heads=2, **kw)).eval()
    m.tokenizer = tok
    return m

@pytest.fixture
def folder(tok, tmp_path):
    run = Config(run_name='tiny', d_model=32, n_heads=2, train_data='dev-mix')       # the run record travels along
    return save_pretrained(tiny(tok), run, tmp_path/'tiny', metrics={'stsb-test_spearman': 12.3})

@pytest.mark.parametrize('kw', [{}, dict(embedding='learned'), dict(id_order='random', n_layers=2)])
def test_round_trip_gives_bit_identical_embeddings(tok, tmp_path, kw):
    m = tiny(tok, **kw)
    f = save_pretrained(m, m.cfg, tmp_path/'m')
    assert sorted(p.name for p in f.iterdir()) == sorted([*MODEL_FILES, 'README.md'])
    back = from_pretrained(str(f))
    assert isinstance(back, SentenceEncoder) and back.cfg == m.cfg and not back.training and back.tokenizer is not None
    assert np.array_equal(back.encode(S), m.encode(S))
    assert torch.equal(back.encode(S, convert_to_tensor=True), m.encode(S, convert_to_tensor=True))

def test_card_front_matter(folder):
    card = (folder/'README.md').read_text()
    front = yaml.safe_load(card.split('---')[1])
    assert front['library_name'] == 'fourier_nb' and 'sentence-similarity' in front['tags']
    assert front['train_data'] == train_data_name('dev-mix')
    assert front['model-index'][0]['results'][0]['metrics'][0]['value'] == 12.3
    assert 'SNLI+MNLI train' not in card.replace('not SNLI/MNLI train', '') and "from_pretrained('path/to/tiny')" in card

def test_export_run_card_matches_metrics(tmp_path):
    cfg = config_from_args([ROOT/'configs/smoke.yaml']).replace(out_dir=str(tmp_path), run_name='r', d_model=32, max_steps=5)
    m = train_and_eval(cfg, progress=False)
    f = export_run(tmp_path/'r', tmp_path/'export')
    front = yaml.safe_load((f/'README.md').read_text().split('---')[1])
    got = {(r['dataset']['name'], r['dataset']['split'], x['type']): x['value']
           for r in front['model-index'][0]['results'] for x in r['metrics']}
    assert got[('STS-B', 'test', 'spearman_cosine')] == m['stsb-test_spearman']
    assert got[('STS-B', 'validation', 'pearson_cosine')] == m['stsb-dev_pearson']
    assert got[('SICK-R', 'test', 'spearman_cosine')] == m['sickr_spearman']
    assert front['train_data'] == m['train_data_name'] and f"{m['params']:,}" in (f/'README.md').read_text()
    assert np.array_equal(from_pretrained(f).encode(S), load_run(tmp_path/'r')[1].encode(S))
    assert np.array_equal(from_pretrained(tmp_path/'r').encode(S), from_pretrained(f).encode(S))   # a run folder loads too

@pytest.mark.parametrize('name', MODEL_FILES)
def test_missing_file_is_named(folder, name):
    (folder/name).unlink()
    with pytest.raises(FileNotFoundError, match=f'{name} is missing'): from_pretrained(folder)

@pytest.mark.parametrize('cut', [lambda b: b[:len(b) // 2], lambda b: b'\x00garbage' * 64])
def test_corrupt_safetensors_is_named(folder, cut):
    p = folder/'model.safetensors'
    p.write_bytes(cut(p.read_bytes()))
    with pytest.raises(ValueError, match=r'model\.safetensors: corrupt or truncated'): from_pretrained(folder)

@pytest.mark.parametrize('name,text,msg', [
    ('config.json', '{"d_model": 32,', r'config\.json: not a valid fourier_nb config\.json'),
    ('config.json', '{"architectures": ["BertModel"]}', r'config\.json: not a valid fourier_nb config.*architectures'),
    ('config.json', '{"d_model": "wide"}', r'config\.json: not a valid fourier_nb config.*d_model'),
    ('tokenizer.json', '{"version": "1.0", ', r'tokenizer\.json: not a valid JSON file'),
])
def test_corrupt_json_is_named(folder, name, text, msg):
    (folder/name).write_text(text)
    with pytest.raises(ValueError, match=msg): from_pretrained(folder)

def test_config_that_does_not_fit_the_weights(folder):
    cfg = json.loads((folder/'config.json').read_text())
    (folder/'config.json').write_text(json.dumps(cfg | {'d_model': 64}))
    with pytest.raises(ValueError, match='disagree'): from_pretrained(folder)

def test_save_refuses_a_model_without_tokenizer_or_with_another_cfg(tok, tmp_path):
    m = tiny(tok)
    with pytest.raises(ValueError, match='cfg does not describe'): save_pretrained(m, Config(d_model=64), tmp_path/'a')
    m.tokenizer = None
    with pytest.raises(ValueError, match='no tokenizer'): save_pretrained(m, None, tmp_path/'b')

def test_repo_id_offline_is_a_clear_error(tmp_path):
    "HF_HUB_OFFLINE=1 and an empty Hub cache: the error names the repo id and says it could not be reached."
    code = "from fourier_nb.hub import from_pretrained; from_pretrained('fourier-nb/no-such-model')"
    env = dict(HF_HUB_OFFLINE='1', HF_HOME=str(tmp_path/'hf'), PATH='/usr/bin:/bin', OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('OSError') and "'fourier-nb/no-such-model'" in last and 'could not be reached' in last, r.stderr

def test_not_a_folder_nor_a_repo_id():
    with pytest.raises(FileNotFoundError, match='No model folder'): from_pretrained('./no/such/../folder')

def test_without_huggingface_hub(monkeypatch, folder):
    monkeypatch.setitem(sys.modules, 'huggingface_hub', None)              # import huggingface_hub -> ImportError
    with pytest.raises(ImportError, match=r"'someone/model'.*pip install huggingface_hub"): from_pretrained('someone/model')
    with pytest.raises(ImportError, match='pip install huggingface_hub'): push_to_hub(folder, 'someone/model')
    assert from_pretrained(folder).cfg.d_model == 32                        # local folders need no huggingface_hub

def test_push_to_hub_calls(monkeypatch, tok, folder):
    "push_to_hub against a stand-in HfApi: create_repo, then upload_folder of a complete model folder."
    calls = []
    class FakeApi:
        def __init__(self, token=None): self.token = token
        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls.append(('create', repo_id, private, exist_ok, self.token)); return f'https://hub/{repo_id}'
        def upload_folder(self, repo_id, folder_path, commit_message=None):
            p = Path(folder_path)
            calls.append(('upload', repo_id, sorted(x.name for x in p.iterdir()), (p/'README.md').read_text()))
    monkeypatch.setitem(sys.modules, 'huggingface_hub', types.SimpleNamespace(HfApi=FakeApi))
    assert push_to_hub(tiny(tok), 'me/tiny-fourier', private=True, token='t') == 'https://hub/me/tiny-fourier'
    assert calls[0] == ('create', 'me/tiny-fourier', True, True, 't')
    assert calls[1][2] == sorted([*MODEL_FILES, 'README.md']) and "from_pretrained('me/tiny-fourier')" in calls[1][3]
    push_to_hub(folder, 'me/other')
    assert calls[3][:3] == ('upload', 'me/other', sorted([*MODEL_FILES, 'README.md', 'config.yaml']))   # + the run record
    (folder/'tokenizer.json').unlink()
    with pytest.raises(FileNotFoundError, match='tokenizer.json is missing'): push_to_hub(folder, 'me/other')
