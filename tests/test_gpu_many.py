"CPU-side tests of benchmarks/gpu_many.py: the plan of every mode, the stream plan, the no-GPU error, argument errors, and the CPU-runnable paths (tiny stand-ins)."
import json, subprocess, sys
from pathlib import Path
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'benchmarks'/'gpu_many.py'
sys.path.insert(0, str(ROOT/'benchmarks'))
import gpu_many as gm                                      # noqa: E402

TWO = ['table1-fourier-L1-d256', 'table1-learned-L2-d512']  # both embeddings, both depths and widths

def cli(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)

def cpu_args(tmp_path, *extra):
    return gm.args(['--dry-run', '--seconds', '0.3', '--warmup', '1', '--runs', str(tmp_path/'runs'),
                    '--out', str(tmp_path/'out.json'), '--only', *TWO, *extra])

@pytest.fixture(scope='module')
def dry():
    r = cli('--dry-run')
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

def test_dry_run_plans_eight_models_in_every_mode(dry):
    modes = dry['plan']['modes']
    assert set(modes) == set(gm.MODES)
    assert {m: v['models'] for m, v in modes.items()} == {m: 8 for m in gm.MODES}
    assert len(dry['plan']['configs']) == 8 and {c['d_model'] for c in dry['plan']['configs']} == {32, 64}   # stand-ins
    for m in ('processes', 'mps'):
        cmds = modes[m]['commands']
        assert len(cmds) == 8 and len({c.split('--only ')[1].split()[0] for c in cmds}) == 8     # one config each
        assert all('--worker sequential' in c and '--dry-run' in c for c in cmds)
    assert modes['sequential']['order'] == [f'{n}-devmix' for n in gm.CONFIGS]

def test_stacks_keep_fourier_and_learned_apart(dry):
    st = dry['plan']['modes']['stacks']
    assert 'Config.embedding' in st['why'] and sorted(len(g) for g in st['groups']) == [1] * 8

def test_stream_plan_gives_every_model_its_own_pool_and_streams(dry):
    ms = dry['plan']['modes']['streams']['members']
    assert [m['model'] for m in ms] == [f'{n}-devmix' for n in gm.CONFIGS]
    assert len({m['pool'] for m in ms}) == 8
    streams = [m[k] for m in ms for k in ('stream', 'capture')]
    assert len(set(streams)) == 16
    one = object()                                         # a plan that shares a stream is refused
    with pytest.raises(RuntimeError, match='share a stream/capture'): gm.stream_plan(['a', 'b'], stream=lambda: one)
    with pytest.raises(RuntimeError, match='share a pool'): gm.stream_plan(['a', 'b'], pool=lambda: (0, 1))
    assert hasattr(torch.cuda.graph, 'default_capture_stream') and callable(torch.cuda.graph_pool_handle)   # what StreamStep patches

@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a GPU: the benchmark would run')
def test_without_cuda_it_stops_with_the_fix():
    r = cli('--seconds', '5')
    assert r.returncode == 1 and 'needs a CUDA GPU (torch.cuda.is_available() is False)' in r.stderr
    assert 'gpu_session2.sh' in r.stderr and '--dry-run' in r.stderr

@pytest.mark.parametrize('argv, msg', [(['--modes', 'sequential,bogus'], "unknown 'bogus'"),
                                       (['--only', 'table1-x'], "unknown config 'table1-x'"),
                                       (['--seconds', '0'], '--seconds must be > 0'),
                                       (['--budget-s', '-1'], 'must be >= 0'),
                                       (['--full', '--modes', ''], '--full --mode fastest needs measured --modes'),
                                       (['--full', '--mode', 'stacks'], '--full does not run stacks'),
                                       (['--mode', 'fast'], "invalid choice: 'fast'")])
def test_argument_errors(argv, msg, capsys):
    with pytest.raises(SystemExit) as e: gm.args(argv)
    assert e.value.code == 2 and msg in capsys.readouterr().err

def test_in_process_modes_run_on_cpu(tmp_path):
    "sequential, stacks and streams end to end on the stand-ins (eager steps, no graphs): rows with rates and FLOPs."
    a = cpu_args(tmp_path)
    for mode in ('sequential', 'stacks', 'streams'):
        r = gm.measure(mode, a)
        assert r['mode'] == mode and r['models'] == 2 and r['aggregate_model_steps_per_s'] > 0, r
        assert set(r['per_model_steps_per_s']) == {f'{n}-devmix' for n in TWO} and r['model_tflops'] > 0
        assert r['nonfinite'] == [] and r['mfu'] is None and r['device'] == 'cpu'   # no peak known for a CPU
    assert len(r['streams']) == 2 and r['streams'][0]['pool'] != r['streams'][1]['pool']

def test_full_streams_on_cpu_checkpoints_resumes_and_finishes(tmp_path):
    "--full's in-process path: cut at its deadline it checkpoints and projects; run again it resumes; short runs finish."
    a = cpu_args(tmp_path, '--full-overrides', 'eval_every=0,max_steps=100000,log_every=1')
    first = gm.full('streams', a, deadline=gm.time.time() + 6)
    assert not first['complete'] and first['projected_s'] > first['wall_s'] and first['model_steps_done'] > 0, first
    again = gm.full('streams', a, deadline=gm.time.time() + 6)     # the same command resumes from the checkpoints
    assert all(y['step'] > x['step'] for x, y in zip(first['runs'], again['runs'])), (first, again)
    b = cpu_args(tmp_path/'b', '--full-overrides', 'eval_every=0,max_steps=4,log_every=1')
    done = gm.full('sequential', b, deadline=gm.time.time() + 600)
    assert done['complete'] and [r['steps'] for r in done['runs']] == [4, 4], done
    m = json.loads((tmp_path/'b'/'runs'/'full'/f'{TWO[0]}-devmix'/'metrics.json').read_text())
    assert m['status'] == 'done' and m['loss_final'] is not None and 'stsb-test_spearman' in m

def test_processes_mode_runs_child_processes_on_cpu(tmp_path):
    "The processes mode's launcher and merge: one --worker child per config at once (CPU stand-ins), rates summed."
    a = cpu_args(tmp_path)
    r = gm.run_mode(a, 'processes', timeout=240)
    assert r.get('errors') == {} and r['models'] == 2, r
    assert r['aggregate_model_steps_per_s'] == pytest.approx(sum(r['per_model_steps_per_s'].values()), abs=0.2)
    assert sorted(p.name for p in tmp_path.glob('gpu_many-*.log')) == sorted(f'gpu_many-processes-{n}.log' for n in TWO)
