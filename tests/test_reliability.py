"""Nothing lost, nothing silent: one test per class of careless or hostile input, each asserting a clear error (the
problem, the file, the fix) or correct behaviour, and that nothing was overwritten. The classes:
1. loss: every writer of a run folder refuses a folder that holds a run of other settings;
2. silent acceptance: bad values at every public entry point are refused, not turned into garbage;
3. library errors at the file boundary become one FileProblem that names the file and the fix;
4. command-line arguments: one-line errors that name the flag; one path for every error;
5. leftovers and pointers: temp files of killed writes are swept; no error points at a file that does not exist."""
import errno, json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from fourier_nb.config import Config, run_dir
from fourier_nb.files import FileProblem, atomic_write, read_json, sweep_temps
from fourier_nb.data import load_tokenizer, tokenizer_from_file
from fourier_nb.model import SentenceEncoder
from fourier_nb.checkpoint import RunMismatch, guard_run_folder, load_run, read_tensors, write_tensors
from fourier_nb.train import NonFiniteLoss, Trainer
from fourier_nb.run import run_lock, train_and_eval
from fourier_nb.cli import compare_table, config_from_args, launch_runs, main
from fourier_nb.hub import save_pretrained
from conftest import ROOT

def tiny(tmp_path, **kw) -> Config:
    "A run of seconds: 200 dev-mix pairs, d=16, 4 steps, in tmp_path."
    return Config(**(dict(run_name='r', out_dir=str(tmp_path), train_data='dev-mix', max_pairs=200, d_model=16,
                          batch_size=16, lr=1e-3, warmup_steps=1, max_steps=4, log_every=2, device='cpu', threads=1) | kw))

def snapshot(folder: Path) -> dict:
    "Every file's bytes under `folder` (to prove nothing changed)."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


# --- 1. loss ----------------------------------------------------------------------------------------------------------
def test_every_writer_refuses_a_folder_of_other_settings(tmp_path):
    done = train_and_eval(tiny(tmp_path), progress=False)
    before = snapshot(tmp_path/'r')
    probes = [lambda: train_and_eval(tiny(tmp_path, lr=3e-3), progress=False),                     # a single run
              lambda: main(['--overrides', f'out_dir={tmp_path},run_name=r,train_data=dev-mix,max_pairs=200,d_model=16,'
                                           'batch_size=16,lr=3e-3,warmup_steps=1,max_steps=4,log_every=2,device=cpu']),
              lambda: launch_runs({'r': {k: v for k, v in tiny(tmp_path, lr=3e-3).to_dict().items()
                                         if k not in ('run_name', 'out_dir', 'threads')}}, out_dir=str(tmp_path)),
              lambda: train_and_eval(tiny(tmp_path, finetune_steps=4), progress=False),             # fine-tuning
              lambda: Trainer(tiny(tmp_path, d_model=32), progress=False).resume()]                 # a resume
    for probe in probes:
        with pytest.raises((RunMismatch, SystemExit)) as e: probe()
        if isinstance(e.value, RunMismatch):
            assert str(tmp_path/'r') in str(e.value) and 'Use another run_name' in str(e.value), e.value
    assert snapshot(tmp_path/'r') == before                                        # nothing was written
    other = SentenceEncoder(Config(d_model=32)); other.tokenizer = load_tokenizer(Config())
    with pytest.raises(RunMismatch, match='d_model: folder 16 vs now 32'): save_pretrained(other, None, tmp_path/'r')
    assert snapshot(tmp_path/'r') == before and done['status'] == 'done'

def test_a_partial_run_of_other_settings_is_kept_too(tmp_path):
    Trainer(tiny(tmp_path), progress=False).fit(stop_at=2)                         # killed after 2 steps
    before = snapshot(tmp_path/'r')
    with pytest.raises(RunMismatch, match='partial or finished run'): guard_run_folder(tiny(tmp_path, seed=1))
    assert snapshot(tmp_path/'r') == before
    guard_run_folder(tiny(tmp_path, threads=2, log_every=1))                       # runtime fields may differ


# --- 2. silent acceptance ---------------------------------------------------------------------------------------------
def test_bad_values_are_refused_at_every_entry_point(tmp_path):
    m = SentenceEncoder(Config(d_model=16)); m.tokenizer = load_tokenizer(Config())
    for bs in (-1, 0, 1.5, None, 'x'):
        with pytest.raises(ValueError, match='batch_size'): m.encode(['a'], batch_size=bs)
    for x in ({'a': 'zzz'}, {'a', 'b'}, 12, b'raw', [None]):
        with pytest.raises(TypeError, match='encode: sentences'): m.encode(x)
    for td in (0, 17, True):
        with pytest.raises(ValueError, match='truncate_dim'): m.encode(['a'], truncate_dim=td)
    for name in ('', '../esc', 'a/b', '.', '..', '.x'):
        with pytest.raises(ValueError, match='run_name'): tiny(tmp_path, run_name=name)
    for kw, field in ((dict(max_pairs=-5), 'max_pairs'), (dict(ckpt_every=-1), 'ckpt_every'),
                      (dict(lr=0), 'lr'), (dict(threads=-2), 'threads'),
                      (dict(train_fraction=1.5), 'train_fraction'), (dict(max_pairs=10, train_fraction=0.5), 'set one'),
                      (dict(loss='distill', infonce_steps=3), 'infonce_steps'), (dict(tau_init=-1), 'tau_init')):
        with pytest.raises((ValueError, TypeError), match=field): tiny(tmp_path, **kw)
    from fourier_nb.cli import config_from_args
    with pytest.raises(ValueError, match="did you mean 'flickr30k'"): config_from_args([], 'train_data=dev-mix+flikr')

def test_checkpoints_and_dev_checks_follow_their_own_settings(tmp_path):
    "ckpt_every and eval_every are honoured whatever log_every is (no silent coupling)."
    t = Trainer(tiny(tmp_path, max_steps=14, ckpt_every=7, eval_every=5, log_every=10), progress=False)
    saved = []
    real = t.save; t.save = lambda ph: (saved.append(t.step), real(ph))
    t.fit()
    assert saved == [7, 14] and [h['step'] for h in t.history if 'stsb-dev_spearman' in h] == [5, 10]


# --- 3. file boundary -------------------------------------------------------------------------------------------------
def test_library_errors_become_file_problems(tmp_path, monkeypatch):
    bad_tok = tmp_path/'tok.json'
    for text in ('{"version": "1.0", "trunc', '{}', ''):
        bad_tok.write_text(text)
        with pytest.raises(FileProblem, match=f'{bad_tok}: not a valid tokenizer.json'): tokenizer_from_file(bad_tok)
    train_and_eval(tiny(tmp_path), progress=False)
    (tmp_path/'r'/'tokenizer.json').write_text('{}')
    with pytest.raises(FileProblem, match='tokenizer.json: not a valid tokenizer.json'): load_run(tmp_path/'r')
    for text in ('', '{"a": ', '[1, 2]', '{"no": "run_name"}'):
        (tmp_path/'r'/'metrics.json').write_text(text)
        with pytest.raises(FileProblem, match='metrics.json'): compare_table([str(tmp_path/'r')])
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr('safetensors.torch.save_file', lambda *a, **k: (_ for _ in ()).throw(Exception('File too large')))
    with pytest.raises(FileProblem, match='disk is full.*Free some space'): write_tensors(tmp_path/'x.safetensors', {})
    assert not list(tmp_path.glob('.x.safetensors.tmp-*'))                         # no half-written file left
    monkeypatch.setattr(os, 'open', lambda *a, **k: (_ for _ in ()).throw(PermissionError(errno.EACCES, 'Permission denied')))
    with pytest.raises(FileProblem, match='permission denied.*writable'):
        with run_lock(tmp_path/'ro'/'run'): pass

def test_a_read_only_run_folder_on_resume_names_the_file(tmp_path, monkeypatch):
    t = Trainer(tiny(tmp_path, max_steps=6), progress=False); t.fit(stop_at=2)
    import fourier_nb.files as files
    real = files.os.replace
    def deny(src, dst):
        if str(dst).endswith('checkpoint.safetensors'): raise PermissionError(errno.EROFS, 'Read-only file system')
        return real(src, dst)
    monkeypatch.setattr(files.os, 'replace', deny)
    t2 = Trainer(tiny(tmp_path, max_steps=6), progress=False); t2.resume()
    with pytest.raises(FileProblem, match=r'checkpoint\.safetensors: permission denied'): t2.fit()


# --- 4. command line --------------------------------------------------------------------------------------------------
def _cli(*args):
    r = subprocess.run([sys.executable, '-m', 'fourier_nb.cli', *args], cwd=ROOT, capture_output=True, text=True,
                       env=os.environ | dict(OMP_NUM_THREADS='1'), timeout=600)
    return r.returncode, r.stdout + r.stderr

def test_cli_errors_are_one_line_and_name_the_flag(tmp_path):
    for seeds in ('0,a', '1.5', '0 1', '-1', '0,0'):
        rc, out = _cli('--config', 'configs/smoke.yaml', '--seeds', seeds)
        assert rc == 2 and '--seeds' in out and 'Traceback' not in out, out
    rc, out = _cli('--no-progress', '--table', str(tmp_path/'nothing'))                  # --table after another flag
    assert rc == 1 and 'train it first' in out and 'Traceback' not in out, out
    rc, out = _cli('--parallel', '0', '--config', 'configs/smoke.yaml')
    assert rc == 2 and '--parallel' in out, out
    with run_lock(tmp_path/'locked-s0'):                                                                   # a grid member is locked
        rc, out = _cli('--config', 'configs/smoke.yaml', '--seeds', '0', '--no-progress',
                       '--overrides', f'out_dir={tmp_path},run_name=locked,max_steps=2')
    assert rc == 1 and 'RunLocked' in out and 'Traceback' not in out and len(out.strip().splitlines()) <= 3, out


# --- 5. leftovers and pointers ----------------------------------------------------------------------------------------
def test_temp_files_of_killed_writes_are_swept_and_errors_point_at_real_files(tmp_path):
    cfg = tiny(tmp_path)
    folder = run_dir(cfg); folder.mkdir(parents=True)
    dead = 2**22 + 4321                                                                   # no such process
    (folder/f'.checkpoint.safetensors.tmp-{dead}').write_bytes(b'x' * 1000)
    (folder/'finetuned').mkdir(); (folder/'finetuned'/f'.model.safetensors.tmp-{dead}').write_bytes(b'x')
    train_and_eval(cfg, progress=False)
    assert not list(folder.rglob('.*.tmp-*'))
    t = Trainer(tiny(tmp_path, run_name='nan'), progress=False)
    t.model.register_forward_hook(lambda m, i, o: o * float('nan'))
    with pytest.raises(NonFiniteLoss) as e: t.fit()
    assert 'none was written yet' in str(e.value) and not (tmp_path/'nan'/'checkpoint.safetensors').exists()


# --- the same classes, other inputs (second round) -------------------------------------------------------------------
def _tiny(tmp_path, **kw) -> Config:
    "tiny() with its own token cache (and teacher cache beside it) in tmp_path."
    return tiny(tmp_path, **(dict(cache_dir=str(tmp_path/'cache'/'tokens')) | kw))

class _FakeTeacher:
    name, sha, dim = 'fake', 'abc', 4
    def encode(self, texts): return np.ones((len(texts), 4), np.float32)

def test_writers_refuse_other_records_formats_and_weights(tmp_path):
    from fourier_nb.export import export_sentence_transformers, export_static
    from fourier_nb.cli import grid_configs
    train_and_eval(_tiny(tmp_path), progress=False)
    r = tmp_path/'r'
    (r/'checkpoint.safetensors').unlink(); (r/'config.yaml').unlink()       # space freed: only metrics.json records it
    with pytest.raises(RunMismatch, match=r'metrics\.json.*lr: folder 0.001 vs now 0.003'):
        guard_run_folder(_tiny(tmp_path, lr=3e-3))
    cfg, model = load_run(r)
    fresh = SentenceEncoder(model.cfg); fresh.tokenizer = model.tokenizer
    before = snapshot(r)
    with pytest.raises(RunMismatch, match="training run's folder"): save_pretrained(fresh, None, r)  # other weights
    train_and_eval(_tiny(tmp_path, run_name='bag', n_layers=0, pooler='none'), progress=False)
    with pytest.raises(RunMismatch, match='not a static export'): export_static(tmp_path/'bag', r)
    assert snapshot(r) == before
    static = export_static(tmp_path/'bag', tmp_path/'static')
    train_and_eval(_tiny(tmp_path, run_name='bag32', n_layers=0, pooler='none', d_model=32), progress=False)
    with pytest.raises(RunMismatch, match='d_model: folder 16 vs now 32'): export_static(tmp_path/'bag32', static)
    with pytest.raises(RunMismatch, match='holds a model2vec model'): export_sentence_transformers(r, static)
    save_pretrained(model, _tiny(tmp_path), tmp_path/'m')                                # a run record: lr 0.001
    with pytest.raises(RunMismatch, match='lr: folder 0.001 vs now 0.003'):
        save_pretrained(model, _tiny(tmp_path, lr=3e-3), tmp_path/'m')
    for grid, why in (('lr=1e-3|1e-3', 'twice'), (['lr=1e-3', 'lr=2e-3'], 'twice'), ('lr=1e-3|0.001', 'same settings'),
                      ('teacher=a/b|a_b', 'one run folder')):
        with pytest.raises(ValueError, match=why): grid_configs(_tiny(tmp_path), [], grid)
    base = {k: v for k, v in _tiny(tmp_path).to_dict().items() if k not in ('run_name', 'out_dir', 'threads')}
    for runs, kw, why in (({'x': base | dict(out_dir=str(tmp_path/'elsewhere'))}, {}, 'out_dir'),
                          ({'x': base | dict(run_name='y')}, {}, 'run_name'), ({'x': base}, dict(parallel=0), 'parallel')):
        with pytest.raises(ValueError, match=why): launch_runs(runs, out_dir=str(tmp_path), **kw)   # never a hang
    assert not (tmp_path/'x').exists() and not (tmp_path/'elsewhere').exists()

def test_more_bad_values_are_refused(tmp_path):
    from fourier_nb.model import encode_ids
    from fourier_nb.pairs import parse_train_data
    from fourier_nb.cli import parse_overrides
    import fourier_nb.teacher as teacher
    for kw in (dict(lr=float('inf')), dict(weight_decay='inf'), dict(finetune_lr=float('inf')), dict(seed=-1),
               dict(subset_seed=-1), dict(out_dir=''), dict(run_name=' r'), dict(run_name='a\x00b'), dict(run_name='x' * 201),
               dict(table_init='zero')):
        with pytest.raises(ValueError, match=f'Config.{next(iter(kw))}'): _tiny(tmp_path, **kw)
    from fourier_nb.pairs import check_data                      # the data fields: checked before any run starts
    for kw in (dict(train_data='flikr'), dict(hard_negatives=True, train_data='dev-mix+coco'), dict(teacher_corpus='bogus')):
        with pytest.raises(ValueError, match=f'Config.{next(iter(kw))}'): check_data(_tiny(tmp_path, **kw))
        with pytest.raises(ValueError, match=f'Config.{next(iter(kw))}'):
            config_from_args([], ','.join(f'{k}={v}' for k, v in kw.items()))
    assert Config.from_dict(dict(dropout='None', emb_lr='none')).dropout is None          # not "could not convert"
    m = SentenceEncoder(Config(d_model=16)); m.tokenizer = load_tokenizer(Config())
    for kw in (dict(normalize_embeddings='no'), dict(convert_to_numpy='false'), dict(show_progress_bar='x'), dict(prompt=1)):
        with pytest.raises(TypeError, match=next(iter(kw))): m.encode(['a b'], **kw)
    assert m.encode(['a', 'b'], batch_size=np.int64(1), truncate_dim=np.int64(8)).shape == (2, 8)
    with pytest.raises(ValueError, match='encode_ids: batch_size=-1'): encode_ids(m, [[101, 102]], -1)   # not empty()
    for spec, why in (('captions+coco', "'captions' is a preset"), ('coco*', 'weight'), ('DEV-MIX', "did you mean 'dev-mix'")):
        with pytest.raises(ValueError, match=why): parse_train_data(spec)
    with pytest.raises(TypeError, match='a str'): parse_train_data(None)
    with pytest.raises(ValueError, match="'lr' is given twice"): parse_overrides('lr=1e-3,lr=5')
    with pytest.raises(ValueError, match='chunk=-1'):                                     # not a cache of zeros
        teacher.encode_corpus(_tiny(tmp_path), 'dev-mix', _FakeTeacher(), chunk=-1, progress=False)
    assert not (tmp_path/'cache'/'teacher').exists()

def test_more_library_errors_become_file_problems(tmp_path, monkeypatch):
    import pyarrow as pa, pyarrow.parquet as pq
    from safetensors.torch import save_file
    from fourier_nb.data import load_stsb
    from fourier_nb.cache import cached_pairs
    from fourier_nb.cli import read_config_file
    from fourier_nb.files import guard
    import fourier_nb.teacher as teacher
    (tmp_path/'r').mkdir()
    save_file({'x': torch.zeros(2)}, str(tmp_path/'r'/'checkpoint.safetensors'))         # a header without a config
    with pytest.raises(FileProblem, match='checkpoint.safetensors: .*records no config'): guard_run_folder(_tiny(tmp_path))
    shutil.copytree(Path(os.environ.get('FNB_DATA_DIR', ROOT.parent/'shared'/'data'))/'tokenizer', tmp_path/'d'/'tokenizer')
    (tmp_path/'d'/'stsb').mkdir()
    for cols, why in ((dict(score=['high']), 'not numbers'), (dict(sentence1=[None]), 'lack a sentence'),
                      (dict(score=None), 'lacks the columns')):
        table = {k: v for k, v in (dict(sentence1=['a'], sentence2=['b'], score=[1.0]) | cols).items() if v is not None}
        pq.write_table(pa.table(table), tmp_path/'d'/'stsb'/'validation.parquet')
        with pytest.raises(FileProblem, match=f'validation.parquet: .*{why}'):
            load_stsb(Config(data_dir=str(tmp_path/'d')), 'validation')
    td = cached_pairs(_tiny(tmp_path))
    (td.folder/'sentences.json').write_text('[1, ')
    with pytest.raises(FileProblem, match='sentences.json'): td.sentences()
    (td.folder/'group.npy').write_bytes(b'junk')
    monkeypatch.setenv('FNB_CACHE_ONLY', '1')
    with pytest.warns(UserWarning), pytest.raises(FileProblem, match='corrupt token cache'): cached_pairs(_tiny(tmp_path))
    monkeypatch.delenv('FNB_CACHE_ONLY')
    monkeypatch.setattr(teacher, 'corpus_sentences', lambda cfg, corpus: [f's{i}' for i in range(9)])
    folder = teacher.encode_corpus(_tiny(tmp_path), 'dev-mix', _FakeTeacher(), chunk=4, progress=False)
    (folder/'vectors.npy').write_bytes(b'junk')
    with pytest.raises(FileProblem, match='vectors.npy: not a valid teacher vectors file'):
        teacher.teacher_vectors(_tiny(tmp_path), 'dev-mix', 'fake')
    man = read_json(folder/'manifest.json'); del man['n']; (folder/'manifest.json').write_text(json.dumps(man))
    with pytest.raises(FileProblem, match=r"manifest.json: lacks the fields \['n'\]"):
        teacher.teacher_vectors(_tiny(tmp_path), 'dev-mix', 'fake')
    for text, why in ((b'\xff\xfe', 'UnicodeDecodeError'), (b'lr: 1\nlr: 2\n', "keys \\['lr'\\] appear twice"),
                      (b'lr: [1,\n', 'YAML')):
        (tmp_path/'c.yaml').write_bytes(text)
        with pytest.raises(FileProblem, match=f'c.yaml: .*{why}'): read_config_file(tmp_path/'c.yaml')
    with pytest.raises(FileProblem, match='disk is full'):                                 # tokenizers' own error type
        with guard(tmp_path/'t.json', reading=False): raise Exception('No space left on device (os error 28)')
    (tmp_path/'r'/'metrics.json').write_text('{"run_name": "r"}')
    with pytest.raises(FileProblem, match=r"metrics.json: lacks \['embedding'"): compare_table([str(tmp_path/'r')])

def test_cli_more_errors_are_one_line_on_every_path(tmp_path):
    ov = (f'out_dir={tmp_path},cache_dir={tmp_path}/cache/tokens,train_data=dev-mix,max_pairs=200,d_model=16,'
          'batch_size=16,warmup_steps=1,max_steps=4,log_every=2,device=cpu')
    (tmp_path/'bin.yaml').write_bytes(b'\xff\xfe binary')
    for args, flag in ((['--overrides', ov + ',lr=1e-3,lr=5'], '--overrides'), (['--overrides', ov, '--parallel', '2'], '--parallel'),
                       (['--overrides', ov, '--seeds', ''], '--seeds'), (['--config', str(tmp_path/'bin.yaml')], 'bin.yaml'),
                       (['--overrides', ov, '--grid', 'lr=1e-3', '--grid', 'lr=2e-3'], '--grid'),
                       (['--overrides', ov.replace('device=cpu', 'loss=distill,teacher=nobody')], 'Config.teacher')):
        rc, out = _cli(*args)
        assert rc == 2 and flag in out and 'Traceback' not in out, out
    rc, out = _cli('--overrides', ov + ',run_name=g', '--grid', 'lr=1e-3|1e30', '--parallel', '2', '--no-progress')
    log = tmp_path/'g-lr1e30-s0.log'                                      # lr 1e30: a NaN loss in one run of two
    assert rc == 1 and '1 of 2 runs failed: g-lr1e30-s0' in out and str(log) in out and log.exists(), out
    assert 'g-lr1e30-s0' not in out.split('wrote')[-1].split('\n')[0] and 'Traceback' not in out, out
    for args, flag in ((['--corpus', 'flikr'], '--corpus'), (['--threads', '-1'], '--threads'), (['--teacher', 'x'], '--teacher')):
        r = subprocess.run([sys.executable, '-m', 'fourier_nb.teacher', *args], cwd=ROOT, capture_output=True, text=True,
                           env=os.environ | dict(OMP_NUM_THREADS='1'), timeout=600)
        assert r.returncode == 2 and flag in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_more_leftovers_are_swept_and_hints_are_runnable(tmp_path, monkeypatch):
    from fourier_nb.cache import cached_pairs
    from fourier_nb.export import export_static
    import fourier_nb.teacher as teacher
    dead = 2**22 + 4321
    root = tmp_path/'cache'/'tokens'; root.mkdir(parents=True)
    (root/f'.tmp-{dead}-pairs-x').mkdir(); (root/f'.tmp-{dead}-pairs-x'/'ids.npy').write_bytes(b'x' * 100)
    (root/f'.tokenizer.json.tmp-{dead}').write_text('x')
    cached_pairs(_tiny(tmp_path))
    assert not list(root.glob('.tmp-*')) and not list(root.glob('.*.tmp-*'))      # a killed build's folder and file
    train_and_eval(_tiny(tmp_path, run_name='bag', n_layers=0, pooler='none'), progress=False)
    cfg, model = load_run(tmp_path/'bag')
    for folder, save in ((tmp_path/'m', lambda f: save_pretrained(model, cfg, f)), (tmp_path/'s', lambda f: export_static(model, f))):
        folder.mkdir(); (folder/f'.model.safetensors.tmp-{dead}').write_bytes(b'x')
        save(folder)
        assert not list(folder.glob('.*.tmp-*')), sorted(folder.iterdir())
    monkeypatch.setattr(teacher, 'corpus_sentences', lambda cfg, corpus: [f's{i}' for i in range(9)])
    folder = teacher.teacher_dir(_tiny(tmp_path), 'fake', 'dev-mix'); folder.mkdir(parents=True)
    (folder/f'.progress.json.tmp-{dead}').write_text('x')
    teacher.encode_corpus(_tiny(tmp_path), 'dev-mix', _FakeTeacher(), chunk=4, progress=False)
    assert not list(folder.glob('.*.tmp-*'))
    with pytest.raises(FileNotFoundError) as e: teacher.teacher_vectors(_tiny(tmp_path), 'coco', 'fake')
    assert f"--cache-dir '{tmp_path/'cache'/'tokens'}'" in str(e.value) and "--teacher 'fake'" in str(e.value)
