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
from fourier_nb.cli import compare_table, launch_runs, main
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
