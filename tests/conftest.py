"Shared test helpers: running code in a fresh interpreter with some imports blocked."
import os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def run_blocked(code: str, packages=(), modules=(), reason: str = 'blocked', timeout: int = 600):
    """Run `code` in a fresh interpreter where importing a top-level package of `packages`, or a module named exactly in
    `modules`, raises ImportError (torch is imported first: it may import numpy itself). Returns the CompletedProcess."""
    head = f"""
import importlib.abc, sys
import torch
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {tuple(packages)!r} or name in {tuple(modules)!r}:
            raise ImportError({reason!r} + ': ' + name)
sys.meta_path.insert(0, _Blocked())
"""
    return subprocess.run([sys.executable, '-c', head + code], capture_output=True, text=True, cwd=ROOT,
                          env=os.environ | dict(OMP_NUM_THREADS='1'), timeout=timeout)
