"Tests of benchmarks/stack.py: per-member AdamW equals torch's, a stack equals its single runs, exact resume, NaN stop, member folders."
import json, shutil, sys
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'benchmarks'))
import stack as S                                          # noqa: E402  benchmarks/stack.py
from fourier_nb.config import Config, run_dir              # noqa: E402
from fourier_nb.train import NonFiniteLoss, Trainer        # noqa: E402
from fourier_nb.checkpoint import RunMismatch, read_tensors   # noqa: E402
from fourier_nb.run import RunLocked, run_lock, train_and_eval   # noqa: E402

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope='module')
def tmp(tmp_path_factory): return tmp_path_factory.mktemp('stack')

@pytest.fixture(scope='module')
def small(tmp):
    "Tiny runs; clipping active at every step (grad_clip=0.05), warm-up and decay, groups masked (dev-mix paraphrases)."
    return Config(run_name='m', out_dir=str(tmp), cache_dir=str(tmp/'cache'), train_data='dev-mix', max_pairs=400,
                  d_model=32, n_heads=2, batch_size=16, lr=1e-3, warmup_steps=3, max_steps=10, weight_decay=0.1,
                  grad_clip=0.05, log_every=1, eval_batch_size=512, device='cpu')

@pytest.fixture(scope='module')
def cfgs(small):   # two seeds at one lr; a third seed at another lr, its own embedding lr, no decay, no group mask
    return [small.replace(run_name='m-s0'), small.replace(run_name='m-s1', seed=1),
            small.replace(run_name='m-s2', seed=2, lr=3e-3, emb_lr=3e-2, weight_decay=0.0, mask_groups=False)]

@pytest.fixture(scope='module')
def trained(cfgs):
    st = S.Stack(cfgs, progress=False)
    assert st.fit() and st.step == 10
    return st

def same_weights(a: dict, b: dict, d: int, eps=1e-5):
    "Close state dicts; the attention's key bias (rows d:2d of qkv.bias: a zero gradient up to rounding) only to 1e-3."
    for k, v in a.items():
        w = b[k]
        if k.endswith('attn.qkv.bias'):
            torch.testing.assert_close(v[d:2 * d], w[d:2 * d], atol=1e-3, rtol=0); v, w = v[:d], w[:d]
        torch.testing.assert_close(v, w, atol=eps, rtol=0)

def test_adamw_members_is_torch_adamw_with_clipping():
    torch.manual_seed(0)
    ws = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    lrs, wds, clips = [1e-2, 3e-2, 1e-1], [0.0, 0.1, 0.5], [0.5, 0.0, 2.0]
    opts = [torch.optim.AdamW([w], lr=l, weight_decay=d, betas=(0.9, 0.999)) for w, l, d in zip(ws, lrs, wds)]
    P, st = torch.stack([w.detach() for w in ws]).clone(), {}
    for _ in range(5):
        gs = [torch.randn(4, 3) * 3 for _ in ws]
        for w, g, o, c in zip(ws, gs, opts, clips):
            w.grad = g.clone()
            if c: torch.nn.utils.clip_grad_norm_([w], c)
            o.step()
        G = torch.stack(gs)
        norms = S.clip_members([G], torch.tensor(clips))
        S.adamw_members(P, G, st, torch.tensor(lrs, dtype=torch.float64), torch.tensor(wds, dtype=torch.float64))
    torch.testing.assert_close(P, torch.stack([w.detach() for w in ws]), atol=1e-6, rtol=0)
    torch.testing.assert_close(norms, torch.stack(gs).flatten(1).norm(dim=1), atol=1e-5, rtol=0)   # before clipping
    assert not torch.allclose(P[1], ws[0].detach(), atol=1e-6)

def test_check_stackable(small, cfgs):
    assert S.check_stackable(cfgs) == cfgs
    for bad, field in ((dict(d_model=16), 'Config.d_model'), (dict(n_layers=2), 'Config.n_layers'),
                       (dict(embedding='learned'), 'Config.embedding'), (dict(hard_negatives=True), 'Config.hard_negatives')):
        with pytest.raises(ValueError, match=field): S.check_stackable([small, small.replace(run_name='b', **bad)])
    with pytest.raises(ValueError, match='distinct run folders'): S.check_stackable([small, small.replace(seed=1)])
    assert len(S.check_stackable([small, small.replace(run_name='b', compile=True, log_every=5)])) == 2   # ignored, own
    for bad in (dict(loss='distill'), dict(loss='distill+infonce'), dict(finetune_steps=5)):
        with pytest.raises(ValueError, match='one InfoNCE phase only'): S.check_stackable([small.replace(**bad)])
    assert S.stack_name(cfgs) == S.stack_name(list(cfgs)) != S.stack_name(cfgs[::-1])

def test_groups_and_padding(cfgs, monkeypatch):
    st = S.Stack(cfgs, progress=False)
    assert st.params['model.pooler.weight'].shape == (3, 32, 32)
    assert st.groups['model.pooler.weight']['wd'].tolist() == [0.1, 0.1, 0.0]
    assert [st.groups[k]['wd'].tolist() for k in ('model.pooler.bias', 'loss.infonce.log_scale')] == [[0.0] * 3] * 2
    torch.testing.assert_close(st.groups['model.embed.mlp.weight']['scale'].tolist(), [1.0, 1.0, 10.0])   # emb_lr / lr
    parts, groups = st.batch(0)
    assert parts['anchor'][0].shape[:2] == (3, 16) and groups.shape == (3, 16)
    wide = ({k: (F.pad(ids, (0, 7)), F.pad(mask, (0, 7))) for k, (ids, mask) in parts.items()}, groups)   # 7 more pads
    with torch.no_grad():
        torch.testing.assert_close(st.losses(wide), st.losses((parts, groups)), atol=1e-5, rtol=0)
        single = []
        for tr in st.members:
            ph = tr.phases[0]; b = ph.batches.batch(0)
            vecs = {k: tr.model(*v) for k, v in b.parts.items()}
            single.append(tr.objective(vecs, ph.terms, groups=ph.rows['groups'][b.rows] if 'groups' in ph.rows else None))
        torch.testing.assert_close(st.losses((parts, groups)), torch.stack(single), atol=1e-5, rtol=0)
    monkeypatch.setattr(S, 'check_stackable', lambda cs: cs)      # the backstop behind check_stackable
    with pytest.raises(ValueError, match='same tensors'):
        S.Stack([cfgs[0].replace(run_name='w0'), cfgs[1].replace(run_name='w1', emb_mlp='none')], progress=False)

def test_stack_equals_single_runs(cfgs, trained):
    "Each member against its single Trainer from the same settings: the same loss at every step, the same weights."
    assert bool((trained.grad_norm > 0.05).all())                  # clipping was active at the last step
    singles = [Trainer(c.replace(run_name=c.run_name + '-single'), progress=False) for c in cfgs]
    for tr in singles: assert tr.fit()
    for i, tr in enumerate(singles):
        h = trained.histories[i]
        assert [(x['step'], x['lr'], x['phase']) for x in h] == [(x['step'], x['lr'], x['phase']) for x in tr.history]
        torch.testing.assert_close([x['loss'] for x in h], [x['loss'] for x in tr.history], atol=1e-4, rtol=0)
        m = trained.unstack(i)                                       # Adam moves a weight ~lr a step: 1% of that
        same_weights(m.model.state_dict(), tr.model.state_dict(), 32, eps=1e-2 * cfgs[i].lr)
        assert abs(m.objective.tau.item() - tr.objective.tau.item()) < 1e-6
    with pytest.raises(AssertionError): same_weights(trained.unstack(0).model.state_dict(), singles[1].model.state_dict(), 32)

def test_resume_is_exact(cfgs, trained, tmp):
    rs = [c.replace(run_name=c.run_name + '-r') for c in cfgs]
    a = S.Stack(rs, progress=False)
    assert not a.fit(stop_at=4) and a.step == 4
    shutil.copy(a.ckpt_path, tmp/'step4.safetensors')
    b = S.Stack(rs, progress=False)                                  # a fresh process, as after a crash
    assert b.resume() and b.step == 4 and b.fit()
    for k, v in trained.params.items(): assert torch.equal(b.params[k].detach(), v.detach()), k
    assert b.histories == trained.histories
    t, meta = read_tensors(b.ckpt_path)
    assert (t['param.model.pooler.weight'].shape, meta['step'], len(meta['configs'])) == ((3, 32, 32), 10, 3)
    shutil.copy(tmp/'step4.safetensors', a.ckpt_path)
    x = S.Stack(rs, progress=False); x.resume(); x.state.clear(); x.fit()   # without the AdamW moments: not the same
    assert not torch.equal(x.params['model.pooler.weight'].detach(), trained.params['model.pooler.weight'].detach())
    with pytest.raises(ValueError, match='lr: checkpoint 0.001 vs now 0.0005'):
        S.Stack([rs[0].replace(lr=5e-4), *rs[1:]], progress=False).resume()
    with pytest.raises(ValueError, match='holds the runs'): S.Stack(rs[:2], name=a.name, progress=False).resume()

def test_member_checkpoint_resumes_as_its_single_run(small):
    "A member saved at step 4 of 8 with its AdamW moments, continued alone, ends where its single run ends."
    cs = [small.replace(run_name='r-s0', max_steps=8), small.replace(run_name='r-s1', seed=1, lr=3e-3, max_steps=8)]
    st = S.Stack(cs, progress=False)
    assert not st.fit(stop_at=4)
    tr = st.unstack(1, moments=True); tr.save(tr.phases[0])
    alone = Trainer(cs[1].replace(**S.PLAIN), progress=False)
    assert alone.resume() and alone.step == 4 and alone.fit()
    straight = Trainer(cs[1].replace(run_name='r-s1-straight'), progress=False); straight.fit()
    assert [h['step'] for h in alone.history] == [h['step'] for h in straight.history]
    same_weights(alone.model.state_dict(), straight.model.state_dict(), 32)

def test_nonfinite_loss_stops_naming_the_member(cfgs):
    bad, snap = S.Stack([c.replace(run_name=c.run_name + '-nan') for c in cfgs], progress=False), {}
    good = bad.losses
    def nan_at_3(batch):
        l = good(batch)
        if bad.step < 3: return l
        snap.update({k: v.detach().clone() for k, v in bad.params.items()})
        return l * torch.tensor([1., float('nan'), 1.])
    bad.losses = nan_at_3
    with pytest.raises(NonFiniteLoss, match=r'at step 3 in m-s1-nan \(member 1, loss nan\)'): bad.fit()
    assert bad.step == 3 and all(torch.equal(v.detach(), snap[k]) for k, v in bad.params.items())   # no update
    huge = S.Stack([cfgs[0].replace(run_name='h0'), cfgs[1].replace(run_name='h1', lr=1e30)], progress=False)
    with pytest.raises(NonFiniteLoss, match=r'h1 \(member 1'): huge.fit()

def test_train_stack_writes_single_run_folders(small, monkeypatch):
    "Two members with selection on dev against the same runs trained one by one: same files, keys and scores."
    sel = small.replace(select_on_dev=True, eval_every=4, log_every=4, max_steps=8)
    pair = [sel.replace(run_name='e-s0'), sel.replace(run_name='e-s1', seed=1)]
    finish, locked = S.finish_member, []
    def spy(st, i, *a, **kw):                                       # every member's lock is still held when it is written
        for c in st.cfgs:
            with pytest.raises(RunLocked), run_lock(run_dir(c)): pass
        locked.append(i)
        return finish(st, i, *a, **kw)
    monkeypatch.setattr(S, 'finish_member', spy)
    ms = S.train_stack(pair, progress=False)
    assert locked == [0, 1]
    singles = [train_and_eval(c.replace(run_name=c.run_name + '-single'), progress=False) for c in pair]
    files = lambda d: sorted(p.name for p in Path(d).iterdir())
    for c, m, s in zip(pair, ms, singles):
        assert files(run_dir(c)) == files(run_dir(c.replace(run_name=c.run_name + '-single')))
        assert set(m) - set(s) == {'stack', 'stack_size'} and set(s) - set(m) == set()
        assert json.loads((run_dir(c)/'metrics.json').read_text()) == m
        assert (m['status'], m['steps'], m['stack_size'], m['selected_step'] in (4, 8)) == ('done', 8, 2, True)
        for k in ('stsb-dev_spearman', 'stsb-test_spearman', 'sts7_mean', 'last_stsb-dev_spearman'):
            assert m[k] == pytest.approx(s[k], abs=0.02), k
        hist = json.loads((run_dir(c)/'history.json').read_text())
        assert hist[0]['step'] == 4 and 'stsb-dev_spearman' in hist[0]
    assert not (run_dir(pair[0]).parent/f'{run_dir(pair[0]).name}.lock').exists()   # locks released
    again = S.train_stack(pair, progress=False)                     # resumes the finished stack: nothing trained
    assert [m['resumed_from'] for m in again] == [8, 8]
    assert [m['stsb-test_spearman'] for m in again] == [m['stsb-test_spearman'] for m in ms]

def test_member_folder_of_other_settings_is_refused(small):
    "A finished single run in a member's folder, of other settings: RunMismatch before any work, the folder untouched."
    other = train_and_eval(small.replace(run_name='x-s0', lr=5e-4, max_steps=2), progress=False)
    folder = run_dir(small.replace(run_name='x-s0'))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    pair = [small.replace(run_name='x-s0', max_steps=4), small.replace(run_name='x-s1', seed=1, max_steps=4)]
    with pytest.raises(RunMismatch, match='lr: folder 0.0005 vs now 0.001'): S.train_stack(pair, progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before and other['status'] == 'done'
    assert not (folder.parent/S.stack_name(pair)/'checkpoint.safetensors').exists()
    assert not run_dir(pair[1]).exists()

def test_command_line_refuses_a_shape_grid(small, tmp, capsys):
    with pytest.raises(SystemExit) as e:
        S.main(['--overrides', f'out_dir={tmp},cache_dir={tmp}/cache,train_data=dev-mix', '--grid', 'd_model=16|32'])
    assert e.value.code == 2 and 'Config.d_model' in capsys.readouterr().err
