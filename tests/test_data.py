"Integration tests of fourier_nb.data on the local data folder and on tiny Parquet fixtures (no network)."
import json, shutil, subprocess, sys, textwrap
from pathlib import Path
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from fourier_nb.config import Config, repo_root
from fourier_nb.data import (NLI_SPLITS, STSB_SPLITS, Packed, PairBatches, cache_root, cache_size_mb, cached_nli,
                             cached_stsb, data_dir, load_nli_pairs, load_stsb, load_tokenizer, pad_batch, tiny_data)

DEV_MIX = {'snli/validation': 3329, 'snli/test': 3368, 'mnli/validation_matched': 3479, 'mnli/validation_mismatched': 3463}


@pytest.fixture(scope='session')
def tok(): return load_tokenizer(Config())

@pytest.fixture(scope='session')
def mix(tmp_path_factory):
    "The offline dev-mix with its own token cache, built once for the session."
    return Config(nli_train='dev-mix', cache_dir=str(tmp_path_factory.mktemp('cache')))

@pytest.fixture(scope='session')
def mix_packs(mix): return cached_nli(mix)

@pytest.fixture
def tiny(tmp_path):
    "A tiny data folder (real layout) and a cache beside it."
    return Config(data_dir=str(tiny_data(tmp_path/'data')), nli_train='dev-mix', cache_dir=str(tmp_path/'cache'))

def nli_dirs(cfg): return sorted(d.name for d in cache_root(cfg).glob('nli-*'))


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


# --- tokenizer ----------------------------------------------------------------------------------------------------------
def test_tokenizer(tok):
    assert tok.encode('HeLLo WORLD!').ids == tok.encode('Hello world!').ids == [101, 7592, 2088, 999, 102]
    assert tok.get_vocab_size() == 30522 and tok.padding is None
    assert [len(e.ids) for e in tok.encode_batch(['a', 'a b c'])] == [3, 5]  # no padding
    assert len(load_tokenizer(Config(max_len=16)).encode('word ' * 100).ids) == 16
    with pytest.raises(ValueError, match='30522.*30000|30000.*30522'): load_tokenizer(Config(vocab_size=30000))


# --- counts and content of the local files --------------------------------------------------------------------------
def test_dev_mix_counts_from_files(mix):
    root = data_dir(mix)
    for (ds, sp), n in zip(NLI_SPLITS['dev-mix'], DEV_MIX.values()):
        assert (pq.read_table(root/ds/f'{sp}.parquet').column('label').to_numpy() == 0).sum() == n
    pairs = load_nli_pairs(mix)
    assert pairs.attrs['counts'] == DEV_MIX and len(pairs) == 13639 == sum(DEV_MIX.values())
    assert list(pairs.columns) == ['anchor', 'positive'] and pairs.notna().all().all()
    first = pq.read_table(root/'snli'/'validation.parquet').to_pandas().query('label == 0').iloc[0]
    assert tuple(pairs.iloc[0]) == (first.premise, first.hypothesis)         # file order, text untouched

def test_stsb_exact(mix):
    for split, n in zip(STSB_SPLITS, (5749, 1500, 1379)):
        df = load_stsb(mix, split)
        raw = pq.read_table(data_dir(mix)/'stsb'/f'{split}.parquet').column('score').to_numpy()
        assert len(df) == n and list(df.columns) == ['sentence1', 'sentence2', 'score'] and df.score.dtype == np.float64
        assert np.array_equal(df.score.to_numpy(), raw)                       # exact, never rounded
    with pytest.raises(ValueError, match='dev'): load_stsb(mix, 'dev')


# --- errors that say what to do -------------------------------------------------------------------------------------
def test_missing_train_files_name_both_ways_out(tmp_path):
    cfg = Config(cache_dir=str(tmp_path))
    for f in (load_nli_pairs, cached_nli):
        with pytest.raises(FileNotFoundError) as e: f(cfg)
        for s in ('train.parquet', "nli_train='dev-mix'", "data_source='hub'"): assert s in str(e.value)

def test_train_files_that_appear_later_just_work(tiny):
    root = Path(tiny.data_dir)
    shutil.copy(root/'snli'/'validation.parquet', root/'snli'/'train.parquet')
    with pytest.raises(FileNotFoundError, match='mnli/train.parquet'): load_nli_pairs(tiny.replace(nli_train='train'))
    shutil.copy(root/'mnli'/'validation_matched.parquet', root/'mnli'/'train.parquet')
    cfg = tiny.replace(nli_train='train')
    assert load_nli_pairs(cfg).attrs['counts'] == {'snli/train': 16, 'mnli/train': 16}
    assert len(cached_nli(cfg)['anchor']) == 32
    meta = json.loads(next(cache_root(cfg).glob('nli-*/meta.json')).read_text())
    assert meta['train_data_name'] == 'SNLI+MNLI train' and meta['counts'] == {'snli/train': 16, 'mnli/train': 16}

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
    for f in (load_nli_pairs, cached_nli):
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
    t = load_nli_pairs(tiny.replace(hard_negatives=True))
    assert t.attrs['counts']['snli/validation'] == 3
    assert t.iloc[:3].values.tolist() == [['P', 'e0', 'c0'], ['P', 'e1', 'c1'], ['P', 'e2', 'c0']]   # i-th takes i mod c

def test_hard_negatives_on_local_data(mix):
    t = load_nli_pairs(mix.replace(hard_negatives=True))
    raw = [pq.read_table(data_dir(mix)/ds/f'{sp}.parquet').to_pandas() for ds, sp in NLI_SPLITS['dev-mix']]
    for (name, n), df in zip(t.attrs['counts'].items(), raw):
        with_contra = set(df.premise[df.label == 2])
        assert n == (df.label.eq(0) & df.premise.isin(with_contra)).sum()
    contra = {(p, h) for df in raw for p, h in zip(df.premise[df.label == 2], df.hypothesis[df.label == 2])}
    assert all((a, n) in contra for a, n in zip(t.anchor, t.negative)) and t.notna().all().all()
    print('hard-negative triples:', len(t), t.attrs['counts'])

def test_max_pairs_is_a_seeded_sample(mix):
    full = load_nli_pairs(mix)
    a, b, c = (load_nli_pairs(mix.replace(max_pairs=500, seed=s)) for s in (0, 0, 1))
    assert len(a) == 500 and a.equals(b) and not a.equals(c)
    assert set(map(tuple, a.values)) <= set(map(tuple, full.values))
    assert len(load_nli_pairs(mix.replace(max_pairs=10**7))) == len(full)    # more than there is: all


# --- token cache ------------------------------------------------------------------------------------------------------
def test_cache_round_trip_equals_direct_tokenization(mix, mix_packs, tok):
    pairs = load_nli_pairs(mix)
    for col in ('anchor', 'positive'):
        direct = Packed.from_texts(tok, pairs[col])
        assert np.array_equal(mix_packs[col].ids, direct.ids) and np.array_equal(mix_packs[col].offsets, direct.offsets)
    for i in (0, 777, 13638): assert mix_packs['positive'][i].tolist() == tok.encode(pairs.positive[i]).ids
    for split in STSB_SPLITS:
        s1, s2, score = cached_stsb(mix, split)
        df = load_stsb(mix, split)
        assert [s.tolist() for s in s2.take([0, len(df) - 1])] == [e.ids for e in tok.encode_batch([df.sentence2.iloc[0], df.sentence2.iloc[-1]])]
        assert len(s1) == len(df) and np.array_equal(score, df.score.to_numpy()) and score.dtype == np.float64
    size = cache_size_mb(mix)
    print(f'token cache of the full offline data (dev-mix + STS-B all splits): {size:.2f} MiB')
    assert size < 16

def test_cache_reuse_and_keys(tiny):
    a = cached_nli(tiny)
    first = nli_dirs(tiny)
    mtime = (cache_root(tiny)/first[0]/'meta.json').stat().st_mtime_ns
    cached_nli(tiny); cached_nli(tiny.replace(seed=5))                           # seed only matters when sampling
    assert nli_dirs(tiny) == first and (cache_root(tiny)/first[0]/'meta.json').stat().st_mtime_ns == mtime
    for kw in (dict(max_len=8), dict(hard_negatives=True), dict(max_pairs=10), dict(max_pairs=10, seed=1)):
        cached_nli(tiny.replace(**kw))
    assert len(nli_dirs(tiny)) == 5
    assert len(cached_nli(tiny.replace(max_len=8))['anchor'].ids) < len(a['anchor'].ids)
    path = Path(tiny.data_dir)/'snli'/'test.parquet'                                # new data: new key
    pq.write_table(pq.read_table(path).slice(0, 20), path)
    assert len(cached_nli(tiny)['anchor']) == len(a['anchor']) - 8 and len(nli_dirs(tiny)) == 6

def test_cache_never_reads_partial_and_rebuilds_corrupt(tiny):
    good = cached_nli(tiny)
    folder = cache_root(tiny)/nli_dirs(tiny)[0]
    ref = good['anchor'].ids.copy()
    shutil.rmtree(folder); folder.mkdir(); (folder/'anchor.ids.npy').write_bytes(b'partial')   # no meta.json: partial
    (cache_root(tiny)/'.tmp-junk').mkdir()
    assert np.array_equal(cached_nli(tiny)['anchor'].ids, ref)
    for damage in (lambda: (folder/'anchor.ids.npy').write_bytes(b'garbage'),
                   lambda: np.save(folder/'positive.offsets.npy', np.arange(3, dtype=np.int64)),
                   lambda: (folder/'meta.json').write_text(json.dumps({**json.loads((folder/'meta.json').read_text()), 'n': 1}))):
        damage()
        with pytest.warns(UserWarning, match='corrupt'): again = cached_nli(tiny)
        assert np.array_equal(again['anchor'].ids, ref)
    assert not any(p.name.startswith('.tmp-nli') for p in cache_root(tiny).iterdir())

def test_cache_only_machine(tiny, monkeypatch):
    nli, (s1, _, score) = cached_nli(tiny), cached_stsb(tiny, 'test')
    monkeypatch.setenv('FNB_CACHE_ONLY', '1')
    with pytest.warns(UserWarning, match='FNB_CACHE_ONLY'): assert np.array_equal(cached_nli(tiny)['positive'].ids, nli['positive'].ids)
    monkeypatch.delenv('FNB_CACHE_ONLY')
    shutil.rmtree(tiny.data_dir)                                                    # a GPU box with only .cache/tokens
    with pytest.warns(UserWarning, match='token cache'):
        assert np.array_equal(cached_stsb(tiny, 'test')[2], score)
        assert load_tokenizer(tiny).encode('HeLLo WORLD!').ids == [101, 7592, 2088, 999, 102]
    with pytest.raises(FileNotFoundError, match='no token cache'): cached_nli(tiny.replace(max_len=9))

def test_cache_loads_with_numpy_and_torch_only(tiny):
    cached_nli(tiny)
    folder = cache_root(tiny)/nli_dirs(tiny)[0]
    code = textwrap.dedent(f"""
        import sys
        for m in ('pandas', 'pyarrow', 'datasets', 'tokenizers'): sys.modules[m] = None   # importing them fails
        from fourier_nb.data import Packed, pad_batch, PairBatches
        packs = {{k: Packed.load({str(folder)!r}, k) for k in ('anchor', 'positive')}}
        ids, mask = PairBatches(packs, 8, seed=0).batch(3)['anchor']
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
    assert load_nli_pairs(hub.replace(hard_negatives=True)).equals(load_nli_pairs(tiny.replace(hard_negatives=True)))
    assert np.array_equal(cached_nli(hub)['anchor'].ids, cached_nli(tiny)['anchor'].ids)
    assert load_tokenizer(hub).encode('Hello world!').ids == [101, 7592, 2088, 999, 102]


# --- padding and batches ----------------------------------------------------------------------------------------------
def test_pad_batch():
    ids, mask = pad_batch([np.array([101, 5, 102], np.uint16), np.array([101, 102], np.uint16)], pad_id=7)
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == mask.shape == (2, 3)
    assert ids.tolist() == [[101, 5, 102], [101, 102, 7]] and mask.tolist() == [[True] * 3, [True, True, False]]

def test_batches_padded_to_longest_member(mix_packs):
    pb = PairBatches(mix_packs, 128, seed=0)
    for step in (0, 50, 105):
        idx = pb.indices(step)
        for k, (ids, mask) in pb.batch(step).items():
            lens = mix_packs[k].lengths[idx]
            assert ids.shape == (128, lens.max()) and mask.sum(1).tolist() == lens.tolist()
            assert all(ids[i, :n].tolist() == mix_packs[k][j].tolist() for i, (j, n) in enumerate(zip(idx, lens)))

def test_batches_are_deterministic_and_resumable(mix_packs):
    pb, spe = PairBatches(mix_packs, 128, seed=0), 13639 // 128
    assert pb.steps_per_epoch == spe
    straight = [pb.indices(s) for s in range(3 * spe)]
    for resume_at in (1, spe - 1, spe, spe + 37):                                   # a fresh object, as after a restart
        fresh = PairBatches(mix_packs, 128, seed=0)
        assert all(np.array_equal(fresh.indices(s), straight[s]) for s in range(resume_at, 3 * spe))
    again = PairBatches(mix_packs, 128, seed=0).batch(42)
    assert all(torch.equal(again[k][0], v[0]) for k, v in pb.batch(42).items())
    assert not np.array_equal(PairBatches(mix_packs, 128, seed=1).indices(42), pb.indices(42))
    for e in range(3):
        order = np.stack(straight[e * spe:(e + 1) * spe])
        assert order.shape == (spe, 128) and np.unique(order).size == order.size      # drop_last, no repeats
    assert not np.array_equal(straight[0], straight[spe])                              # epochs differ
    flat = PairBatches(mix_packs, 128, seed=0, bucket=False)
    assert np.unique(np.stack([flat.indices(s) for s in range(spe)])).size == spe * 128
    assert pb.padding_fraction(spe) < 0.5 * flat.padding_fraction(spe)
    short = Packed(np.zeros(2, np.uint16), np.array([0, 2]))
    with pytest.raises(ValueError, match='differ'): PairBatches({'a': mix_packs['anchor'], 'b': short}, 8)
    with pytest.raises(ValueError, match='batch_size'): PairBatches({'b': short}, 8)
