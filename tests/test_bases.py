"The extra bases and the learned peers, seen from the model: Config -> SentenceEncoder and parameter counts."
import subprocess, sys
import pytest
from conftest import run_blocked
import torch
from fourier_nb.config import Config
from fourier_nb.fourier import FourierEmbedding, get_basis
from fourier_nb.model import SentenceEncoder, count_params

NEW_BASES = ['chebyshev', 'rff', 'geometric', 'binary']
V = 30_522
IDS = torch.tensor([[101, 2000, 7592, 102, 0], [101, 30_521, 102, 0, 0]])
MASK = IDS != 0

def test_bases_module_needs_only_torch_and_stdlib():
    "A fresh interpreter with numpy & co. blocked finds the new bases through Config(basis=...) alone (lazy import)."
    code = """
from fourier_nb.config import Config
from fourier_nb.model import SentenceEncoder
for b in ('chebyshev', 'rff', 'geometric', 'binary'): SentenceEncoder(Config(basis=b, d_model=32))(torch.tensor([[1, 2]]))
for e in ('hash', 'factorized'): SentenceEncoder(Config(embedding=e, d_model=32))(torch.tensor([[1, 2]]))
print('ok')
"""
    r = run_blocked(code, ('numpy', 'pandas', 'fastcore', 'nbdev', 'matplotlib', 'scipy'))
    assert r.stdout.strip() == 'ok', r.stderr

@pytest.mark.parametrize('basis', NEW_BASES)
def test_basis_builds_and_runs_in_the_encoder(basis):
    torch.manual_seed(0)
    m = SentenceEncoder(Config(basis=basis, d_model=64))
    out = m(IDS, MASK)
    assert out.shape == (2, 64) and torch.isfinite(out).all()
    assert count_params(m) == count_params(SentenceEncoder(Config(d_model=64)))   # a basis adds no parameters
    out.sum().backward()
    assert m.embed.mlp.weight.grad.abs().sum() > 0

@pytest.mark.parametrize('basis', ['fourier', *NEW_BASES])
def test_basis_contract(basis):
    "float32 (..., dim), bounded, the same with a cached (V, d) table, and every id distinct at d = 256."
    f = get_basis(basis)(IDS, V, 256)
    assert f.shape == (2, 5, 256) and f.dtype == torch.float32 and f.abs().max() <= 1
    emb = FourierEmbedding(V, 256, basis=basis, mlp='none')
    ref = emb(IDS)
    emb.cache_basis(True)
    torch.testing.assert_close(emb(IDS), ref, atol=1e-5, rtol=0)
    assert emb.table.unique(dim=0).shape[0] == V

@pytest.mark.parametrize('embedding', ['hash', 'factorized'])
def test_peer_builds_runs_and_checks_ids(embedding):
    m = SentenceEncoder(Config(embedding=embedding, d_model=64))
    out = m(IDS, MASK)
    assert out.shape == (2, 64) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in m.embed.parameters())
    with pytest.raises(ValueError, match='token id 30522 is out of range for vocab_size V=30522'):
        m(torch.tensor([[101, 30_522, 102]]))

@pytest.mark.parametrize('d', [64, 256])
def test_peer_parameter_counts(d):
    "The whole encoder: swap the learned table (V·d + d) for B·d + V·k + d (hash) or V·e + e·d + d (factorized)."
    table = count_params(SentenceEncoder(Config(embedding='learned', d_model=d))) - (V * d + d)
    assert count_params(SentenceEncoder(Config(embedding='hash', d_model=d))) == table + 1024 * d + 2 * V + d
    cfg = Config(embedding='hash', d_model=d, hash_buckets=256, hash_k=3)
    assert count_params(SentenceEncoder(cfg)) == table + 256 * d + 3 * V + d
    assert count_params(SentenceEncoder(Config(embedding='factorized', d_model=d))) == table + 32 * V + 32 * d + d
    assert count_params(SentenceEncoder(Config(embedding='factorized', d_model=d, factor_dim=8))) == table + 8 * V + 8 * d + d
