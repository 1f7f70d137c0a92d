"Integration tests of fourier_nb.data and .cache on tiny Parquet fixtures (no network); the notebooks test the local data."
import json, shutil, subprocess, sys, textwrap
from pathlib import Path
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fourier_nb.config import Config, repo_root
from fourier_nb.data import cache_root, data_dir, load_stsb, load_tokenizer
from fourier_nb.pairs import load_train_pairs, nli_pairs, tiny_data
from fourier_nb.cache import cached_pairs, cached_stsb

@pytest.fixture
def tiny(tmp_path):
    "A tiny data folder (real layout) and a cache beside it."
    return Config(data_dir=str(tiny_data(tmp_path/'data')), train_data='dev-mix', cache_dir=str(tmp_path/'cache'))

def nli_dirs(cfg): return sorted(d.name for d in cache_root(cfg).glob('pairs-*'))


# --- where the data lives ---------------------------------------------------------------------------------------------
def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.chdir(Path(__file__).parents[1])                                 # repo_root() is found from the cwd
    monkeypatch.delenv('FNB_DATA_DIR', raising=False)
    assert data_dir(Config()) == (repo_root()/'..'/'shared'/'data').resolve()
    monkeypatch.setenv('FNB_DATA_DIR', str(tmp_path))
    assert data_dir(Config()) == tmp_path.resolve()
    other = tmp_path/'other'; other.mkdir()
    assert data_dir(Config(data_dir=str(other))) == other                    # the Config field wins
    monkeypatch.setenv('FNB_DATA_DIR', str(tmp_path/'nope'))
    with pytest.raises(FileNotFoundError) as e: data_dir(Config())
    for s in (str(tmp_path/'nope'), 'FNB_DATA_DIR', 'Config.data_dir', "data_source='hub'"): assert s in str(e.value)


# --- errors that say what to do -------------------------------------------------------------------------------------
def test_train_files_that_appear_later_just_work(tiny):
    root = Path(tiny.data_dir)
    shutil.copy(root/'snli'/'validation.parquet', root/'snli'/'train.parquet')
    with pytest.raises(FileNotFoundError, match='mnli/train.parquet'): load_train_pairs(tiny.replace(train_data='nli-train'))
    shutil.copy(root/'mnli'/'validation_matched.parquet', root/'mnli'/'train.parquet')
    cfg = tiny.replace(train_data='nli-train')
    assert nli_pairs(cfg, 'nli-train').attrs['counts'] == {'snli/train': 16, 'mnli/train': 16}
    assert len(cached_pairs(cfg)) == 32
    meta = json.loads(next(cache_root(cfg).glob('pairs-*/meta.json')).read_text())
    assert meta['train_data_name'] == 'SNLI+MNLI train' and meta['counts'] == {'nli-train': 32}

def _nli_table(**cols):
    base = dict(premise=['p', 'p'], hypothesis=['h1', 'h2'], label=pa.array([0, 2], pa.int64()), pair_id=['1', '2'])
    return pa.table({**base, **cols})

@pytest.mark.parametrize('write, exc, words', [
    (lambda p: p.write_bytes(b'PAR1 this is not parquet'), ValueError, ['readable']),
    (lambda p: p.write_bytes(b''), ValueError, ['readable']),
    (lambda p: pq.write_table(_nli_table().drop_columns(['label', 'hypothesis']), p), ValueError,
     ["['hypothesis', 'label']", "['premise', 'hypothesis', 'label']"]),
    (lambda p: pq.write_table(_nli_table(label=pa.array([0, 3], pa.int64())), p), ValueError, ['[3]', '{-1, 0, 1, 2}']),
    (lambda p: pq.write_table(_nli_table().slice(0, 0), p), ValueError, ['empty split']),
    (lambda p: p.unlink(), FileNotFoundError, ['FNB_DATA_DIR']),
])
def test_bad_nli_files(tiny, write, exc, words):
    path = Path(tiny.data_dir)/'mnli'/'validation_mismatched.parquet'
    write(path)
    for f in (load_train_pairs, cached_pairs):
        with pytest.raises(exc) as e: f(tiny)
        for w in [str(path), *words]: assert w in str(e.value), (w, str(e.value))

def test_bad_stsb_file(tiny):
    path = Path(tiny.data_dir)/'stsb'/'test.parquet'
    pq.write_table(pa.table(dict(sentence1=['a'], sentence2=['b'])), path)
    with pytest.raises(ValueError, match="lacks the columns \\['score'\\]"): load_stsb(tiny, 'test')
    pq.write_table(pa.table(dict(sentence1=['a'], sentence2=['b'], score=[7.0])), path)
    with pytest.raises(ValueError, match='outside'): cached_stsb(tiny, 'test')


# --- pairs, triples, sampling ---------------------------------------------------------------------------------------
def test_hard_negatives_pair_deterministically(tmp_path, tiny):
    rows = [('P', 'e0', 0), ('Q', 'x', 0), ('P', 'c0', 2), ('P', 'e1', 0), ('P', 'n', 1), ('P', 'c1', 2), ('P', 'e2', 0),
            ('Q', 'y', 1)]                                                      # Q has no contradiction: dropped
    path = Path(tiny.data_dir)/'snli'/'validation.parquet'
    pq.write_table(pa.table(dict(premise=[r[0] for r in rows], hypothesis=[r[1] for r in rows],
                                 label=pa.array([r[2] for r in rows], pa.int64()))), path)
    t = load_train_pairs(tiny.replace(hard_negatives=True))
    assert len(nli_pairs(tiny.replace(hard_negatives=True), 'dev-mix').query('anchor == "P"')) == 3
    assert t.iloc[:3][['anchor', 'positive', 'negative']].values.tolist() == [['P', 'e0', 'c0'], ['P', 'e1', 'c1'], ['P', 'e2', 'c0']]   # i-th takes i mod c

# --- token cache ------------------------------------------------------------------------------------------------------
def test_cache_reuse_and_keys(tiny):
    a = cached_pairs(tiny).packs
    first = nli_dirs(tiny)
    mtime = (cache_root(tiny)/first[0]/'meta.json').stat().st_mtime_ns
    cached_pairs(tiny); cached_pairs(tiny.replace(seed=5))                       # the run's seed never changes the pairs
    assert nli_dirs(tiny) == first and (cache_root(tiny)/first[0]/'meta.json').stat().st_mtime_ns == mtime
    for kw in (dict(max_len=8), dict(hard_negatives=True), dict(max_pairs=10), dict(max_pairs=10, subset_seed=1)):
        cached_pairs(tiny.replace(**kw))
    assert len(nli_dirs(tiny)) == 5
    assert len(cached_pairs(tiny.replace(max_len=8)).packs['anchor'].ids) < len(a['anchor'].ids)
    path = Path(tiny.data_dir)/'snli'/'test.parquet'                                # new data: new key
    pq.write_table(pq.read_table(path).slice(0, 20), path)
    assert len(cached_pairs(tiny)) == len(a['anchor']) - 8 and len(nli_dirs(tiny)) == 6

def test_cache_never_reads_partial_and_rebuilds_corrupt(tiny):
    good = cached_pairs(tiny).packs
    folder = cache_root(tiny)/nli_dirs(tiny)[0]
    ref = good['anchor'].ids.copy()
    shutil.rmtree(folder); folder.mkdir(); (folder/'anchor.ids.npy').write_bytes(b'partial')   # no meta.json: partial
    (cache_root(tiny)/'.tmp-junk').mkdir()
    assert np.array_equal(cached_pairs(tiny).packs['anchor'].ids, ref)
    for damage in (lambda: (folder/'anchor.ids.npy').write_bytes(b'garbage'),
                   lambda: np.save(folder/'positive.offsets.npy', np.arange(3, dtype=np.int64)),
                   lambda: (folder/'meta.json').write_text(json.dumps({**json.loads((folder/'meta.json').read_text()), 'n': 1}))):
        damage()
        with pytest.warns(UserWarning, match='corrupt'): again = cached_pairs(tiny).packs
        assert np.array_equal(again['anchor'].ids, ref)
    assert not any(p.name.startswith('.tmp-pairs') for p in cache_root(tiny).iterdir())

def test_cache_loads_with_numpy_and_torch_only(tiny):
    cached_pairs(tiny)
    folder = cache_root(tiny)/nli_dirs(tiny)[0]
    code = textwrap.dedent(f"""
        import sys
        for m in ('pandas', 'pyarrow', 'datasets', 'tokenizers'): sys.modules[m] = None   # importing them fails
        from fourier_nb.data import Packed
        from fourier_nb.batches import PairBatches
        import fourier_nb.cache
        packs = {{k: Packed.load({str(folder)!r}, k) for k in ('anchor', 'positive')}}
        ids, mask = PairBatches(packs, 8, seed=0).batch(3).parts['anchor']
        print(len(packs['anchor']), tuple(ids.shape)[0], mask.dtype)""")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=repo_root())
    assert out.stdout.split() == ['64', '8', 'torch.bool'], out.stderr


# --- hub path, with datasets and tokenizers mocked (no network) ------------------------------------------------------
def test_hub_path_mocked(tiny, monkeypatch):
    import datasets, tokenizers
    root = Path(tiny.data_dir)
    names = {'stanfordnlp/snli': 'snli', 'nyu-mll/multi_nli': 'mnli', 'sentence-transformers/stsb': 'stsb'}
    def fake_load_dataset(name, split):
        df = pd.read_parquet(root/names[name]/f'{split}.parquet')
        if name.endswith('stsb'): df['score'] = df.score / 5                          # the hub copy is in [0, 1]
        return datasets.Dataset.from_pandas(df, preserve_index=False)
    monkeypatch.setattr(datasets, 'load_dataset', fake_load_dataset)
    tok_file = str(root/'tokenizer'/'bert-base-uncased'/'tokenizer.json')
    monkeypatch.setattr(tokenizers.Tokenizer, 'from_pretrained', staticmethod(lambda name: tokenizers.Tokenizer.from_file(tok_file)))
    hub = tiny.replace(data_source='hub')
    np.testing.assert_allclose(load_stsb(hub, 'train').score, load_stsb(tiny, 'train').score, rtol=1e-12)
    assert load_train_pairs(hub.replace(hard_negatives=True)).equals(load_train_pairs(tiny.replace(hard_negatives=True)))
    assert np.array_equal(cached_pairs(hub).packs['anchor'].ids, cached_pairs(tiny).packs['anchor'].ids)
    assert load_tokenizer(hub).encode('Hello world!').ids == [101, 7592, 2088, 999, 102]
