"Data-parallel training with 2 gloo processes on CPU matches one process with the same global batch."
import json, os, subprocess, sys
from pathlib import Path
from fourier_nb.config import repo_root
from fourier_nb.cli import config_from_args
from fourier_nb.train import Trainer

ROOT = repo_root(Path(__file__).parent)
OV = 'max_steps=12,log_every=1,batch_size=32,max_pairs=640'

def run(tmp_path, name, nproc=1, extra=''):
    cmd = ([sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}'] if nproc > 1
           else [sys.executable]) + ['-m', 'fourier_nb.cli', '--no-progress', '--config', 'configs/smoke.yaml',
                                     '--overrides', f'out_dir={tmp_path},run_name={name},{OV}{extra}']
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=os.environ | dict(OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads((tmp_path/name/'history.json').read_text()), json.loads((tmp_path/name/'metrics.json').read_text())

def test_two_gloo_processes_match_one_process(tmp_path):
    h1, m1 = run(tmp_path, 'one')
    h2, m2 = run(tmp_path, 'two', nproc=2)
    assert [h['step'] for h in h1] == [h['step'] for h in h2] == list(range(1, 13))
    for a, b in zip(h1, h2): assert abs(a['loss'] - b['loss']) < 2e-3 * max(1, abs(a['loss'])), (a, b)
    assert abs(m1['stsb-dev_spearman'] - m2['stsb-dev_spearman']) < 0.5

def test_resume_with_another_world_size(tmp_path):
    "6 steps in one process, then the other 6 under torchrun with 2 processes: the curve of a straight run."
    h1, _ = run(tmp_path, 'straight')
    cfg = config_from_args([ROOT/'configs/smoke.yaml'], f'out_dir={tmp_path},run_name=mixed,{OV}')
    Trainer(cfg, progress=False).fit(stop_at=6)
    h2, m2 = run(tmp_path, 'mixed', nproc=2)
    assert m2['resumed_from'] == 6
    for a, b in zip(h1, h2): assert abs(a['loss'] - b['loss']) < 2e-3 * max(1, abs(a['loss'])), (a, b)
