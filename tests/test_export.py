"""Round trips of fourier_nb.export through the optional libraries (model2vec, sentence-transformers, MTEB, ONNX).

Each test skips, naming the missing library, where it is not installed (`pip install -e '.[ecosystem]'`). Models are
random-init and tiny, 100 STS-B dev sentences: seconds each, nothing downloaded."""
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fourier_nb.config import Config, ModelConfig
from fourier_nb.data import load_eval_set, load_tokenizer
from fourier_nb.evaluate import sts_scores
from fourier_nb.model import SentenceEncoder
from fourier_nb.hub import from_pretrained
from fourier_nb.export import (MTEBEncoder, export_onnx, export_sentence_transformers, export_static, mteb_sts_task,
                               static_table, static_tokenizer)

BAGS = {'hash-mapping': dict(embedding='hash', hash_k=1, hash_weights=False, emb_norm=False),
        'hash-mapping-weights': dict(embedding='hash', hash_k=1, hash_weights=True, emb_norm=False),
        'hash-k2-norm': dict(embedding='hash', hash_k=2),
        'learned-norm': dict(embedding='learned'),
        'fourier': dict(embedding='fourier'),
        'demo-sized': dict(embedding='hash', hash_buckets=4096, hash_k=1, hash_weights=False, emb_norm=False,
                           d_model=256)}                                   # configs/cpu-demo-bag.yaml's shape

@pytest.fixture(scope='module')
def tok(): return load_tokenizer(Config())

@pytest.fixture(scope='module')
def S():
    dev = load_eval_set(Config(), 'stsb-dev')
    return list(dict.fromkeys([*dev.sentence1, *dev.sentence2]))[:100]

def tiny(tok, **kw) -> SentenceEncoder:
    "A random-init encoder (default: 1 layer, d=32, tanh pooler) with the real tokenizer."
    torch.manual_seed(0)
    m = SentenceEncoder(ModelConfig(**{**dict(d_model=32, n_heads=2), **kw})).eval()
    m.tokenizer = tok
    return m

def bag(tok, kind): return tiny(tok, n_layers=0, pooler='none', **BAGS[kind])

def min_cos(a, b) -> float:
    return F.cosine_similarity(*(torch.as_tensor(np.asarray(x, np.float64)) for x in (a, b))).min().item()

def test_static_tokenizer_gives_the_kit_ids(tok, S):
    st = static_tokenizer(tok, 128)
    for s in S:
        assert st.encode(s, add_special_tokens=False).ids == tok.encode(s).ids == st.encode(s).ids

def test_static_refuses_what_is_not_a_mean(tok):
    with pytest.raises(ValueError, match='transformer'): static_table(tiny(tok))
    with pytest.raises(ValueError, match="pooler='tanh'"): static_table(tiny(tok, n_layers=0))

def test_static_table_layouts(tok):
    assert [x is None for x in static_table(bag(tok, 'hash-mapping'))[1:]] == [False, True]
    assert [x is None for x in static_table(bag(tok, 'hash-mapping-weights'))[1:]] == [False, False]
    for kind in ('hash-k2-norm', 'learned-norm', 'fourier'):
        E, rows, w = static_table(bag(tok, kind))
        assert E.shape == (30522, 32) and rows is None and w is None

@pytest.mark.parametrize('kind', BAGS)
def test_model2vec_loads_bags(tok, S, tmp_path, kind):
    StaticModel = pytest.importorskip('model2vec', reason='model2vec is not installed').StaticModel
    m = bag(tok, kind)
    assert min_cos(StaticModel.from_pretrained(export_static(m, tmp_path/kind)).encode(S), m.encode(S)) >= 0.99999

@pytest.mark.parametrize('kind', BAGS)
def test_sentence_transformers_loads_bags(tok, S, tmp_path, kind):
    st = pytest.importorskip('sentence_transformers', reason='sentence-transformers is not installed')
    m = bag(tok, kind)
    model = st.SentenceTransformer(str(export_static(m, tmp_path/kind)), device='cpu')
    assert min_cos(model.encode(S), m.encode(S)) >= 0.99999 and model.similarity_fn_name == 'cosine'

@pytest.mark.parametrize('kw', [dict(n_layers=2), dict(n_layers=0), dict(n_layers=1, embedding='learned')])
def test_sentence_transformers_runs_kit_models(tok, S, tmp_path, kw):
    st = pytest.importorskip('sentence_transformers', reason='sentence-transformers is not installed')
    m = tiny(tok, **kw)
    folder = export_sentence_transformers(m, tmp_path/'m')
    assert np.array_equal(from_pretrained(folder).encode(S), m.encode(S))          # still a kit folder
    with pytest.raises(ValueError, match='trust_remote_code'): st.SentenceTransformer(str(folder), device='cpu')
    model = st.SentenceTransformer(str(folder), device='cpu', trust_remote_code=True)
    assert min_cos(model.encode(S, batch_size=16), m.encode(S)) >= 0.99999
    assert model.get_embedding_dimension() == 32 and model.similarity_fn_name == 'cosine'
    model.save(str(tmp_path/'again'))
    again = st.SentenceTransformer(str(tmp_path/'again'), device='cpu', trust_remote_code=True)
    assert np.array_equal(again.encode(S[:8]), model.encode(S[:8]))

@pytest.mark.parametrize('kw', [dict(n_layers=0, pooler='none', embedding='hash', hash_k=1), dict(n_layers=1)])
def test_mteb_spearman_equals_sts_scores(tok, kw):
    mteb = pytest.importorskip('mteb', reason='mteb is not installed')
    m, cfg = tiny(tok, **kw), Config()
    res = mteb.evaluate(MTEBEncoder(m, 'fourier_nb/tiny'), [mteb_sts_task('stsb-dev', cfg)], cache=None,
                        show_progress_bar=False)
    got = res.task_results[0].scores['test'][0]['cosine_spearman']
    assert round(100 * got, 2) == sts_scores(m, cfg, ('stsb-dev',))['stsb-dev_spearman']

@pytest.mark.parametrize('kw', [dict(n_layers=2), dict(n_layers=0, pooler='none', embedding='hash', hash_k=1)])
def test_onnx_equals_encode(tok, S, tmp_path, kw):
    for lib in ('onnx', 'onnxscript'): pytest.importorskip(lib, reason=f'{lib} is not installed')
    ort = pytest.importorskip('onnxruntime', reason='onnxruntime is not installed')
    m = tiny(tok, **kw)
    sess = ort.InferenceSession(str(export_onnx(m, tmp_path/'m.onnx')), providers=['CPUExecutionProvider'])
    ids = [e.ids for e in tok.encode_batch(S)]
    x = np.array([i + [0] * (max(map(len, ids)) - len(i)) for i in ids], np.int64)
    assert np.abs(sess.run(None, {'ids': x, 'mask': x != 0})[0] - m.encode(S)).max() < 1e-4
