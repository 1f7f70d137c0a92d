"""The library reads in the order of the notebooks: no import cycles, and no module needs a later notebook's module.

The order is that of `nbs/*.ipynb` by file name (what `nbdev_test` and a reader see), each notebook standing for the
module its `#| default_exp` names. Imports inside functions ("lazy") run only when called; those that point forward
are allowed only while they are listed in `PENDING`, with the change that removes them.
"""
import ast, json, os, re, subprocess, sys
from pathlib import Path
import pytest
from conftest import run_blocked

ROOT = Path(__file__).parents[1]
PKG = ROOT/'fourier_nb'
MODULES = sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))

# Lazy imports of a later notebook's module: (module, imported module) -> the edit that removes the edge.
PENDING = {}
# Modules that import a later module at module level: module -> the edit that fixes it (none left).
LATE_AT_IMPORT = {}


def notebook_order() -> list:
    "Module names in the order of the notebooks that export them (nbs/*.ipynb by file name; `_` drafts skipped)."
    order = []
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        if nb.name.startswith('_'): continue
        for c in json.loads(nb.read_text())['cells']:
            m = re.match(r'\s*#\|\s*default_exp\s+(\S+)', ''.join(c['source'])) if c['cell_type'] == 'code' else None
            if m:
                order.append(m.group(1))
                break
    return order

ORDER = notebook_order()


def _targets(node, modules=MODULES) -> list:
    "The fourier_nb modules an import statement names (relative or absolute)."
    if isinstance(node, ast.ImportFrom):
        if node.level == 1 or node.module == 'fourier_nb':      # from .x import y / from . import x / from fourier_nb import x
            names = [node.module.split('.')[0]] if node.level == 1 and node.module else [a.name for a in node.names]
        elif node.level == 0 and node.module and node.module.startswith('fourier_nb.'):
            names = [node.module.split('.')[1]]                 # from fourier_nb.x import y
        else: return []
    elif isinstance(node, ast.Import):
        names = [a.name.split('.')[1] for a in node.names if a.name.startswith('fourier_nb.')]   # import fourier_nb.x
    else: return []
    return [n for n in names if n in modules]

def imports(module: str) -> list:
    "(imported module, line, lazy) for every import of a fourier_nb module in fourier_nb/<module>.py."
    out = []
    def walk(node, lazy):
        for ch in ast.iter_child_nodes(node):
            inner = lazy or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            out.extend((t, ch.lineno, inner) for t in _targets(ch))
            walk(ch, inner)
    walk(ast.parse((PKG/f'{module}.py').read_text()), False)
    return out

def find_cycle(graph: dict) -> list:
    "One cycle [a, b, ..., a] of a {module: {imported modules}} graph, or [] if there is none."
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 'open': return stack[stack.index(t):] + [t]
            if t not in state and (c := visit(t)): return c
        state[m] = 'done'; stack.pop()
        return []
    for m in sorted(graph):
        if m not in state and (c := visit(m)): return c
    return []

def later(a: str, b: str) -> bool: return ORDER.index(b) > ORDER.index(a)


def test_every_module_has_a_notebook():
    assert sorted(ORDER) == MODULES, f"modules without a notebook: {set(MODULES) - set(ORDER)}"
    assert len(set(ORDER)) == len(ORDER), f"two notebooks export one module: {ORDER}"

def test_the_walk_sees_every_form_of_import():
    tree = ast.parse("from .a import x\nfrom . import b\nfrom fourier_nb.c import y\nfrom fourier_nb import d\n"
                     "import fourier_nb.e\nimport os\nfrom fourier_nb import __version__")
    assert [t for node in tree.body for t in _targets(node, ('a', 'b', 'c', 'd', 'e'))] == ['a', 'b', 'c', 'd', 'e']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []

def test_no_cycle_among_module_level_imports():
    graph = {m: {t for t, _, lazy in imports(m) if not lazy} for m in MODULES}
    cycle = find_cycle(graph)
    assert not cycle, 'module-level import cycle: ' + ' -> '.join(cycle)

def test_no_cycle_even_counting_lazy_imports():
    "Imports inside functions count too: a lazy edge that closes a loop is a cycle all the same."
    graph = {m: {t for t, _, _ in imports(m)} for m in MODULES}
    cycle = find_cycle(graph)
    assert not cycle, 'import cycle (lazy imports included): ' + ' -> '.join(cycle)

def test_lazy_imports_of_later_modules_are_pending():
    "A lazy import may point forward only while PENDING names it; an edge that is gone must leave PENDING too."
    forward = {(m, t): line for m in MODULES for t, line, lazy in imports(m) if lazy and later(m, t)}
    new = {f'fourier_nb/{m}.py:{line} imports {t}' for (m, t), line in forward.items() if (m, t) not in PENDING}
    gone = {k for k in PENDING if k not in forward}
    assert not new, f"lazy imports of a later notebook's module (move the code, or list the edge in PENDING): {new}"
    assert not gone, f"these edges are gone: remove them from PENDING: {gone}"

def test_module_level_imports_follow_the_notebooks():
    "Static twin of the subprocess test below: every module-level import names an earlier notebook's module."
    late = {m: sorted({t for t, _, lazy in imports(m) if not lazy and later(m, t)}) for m in MODULES}
    late = {m: ts for m, ts in late.items() if ts}
    assert set(late) == set(LATE_AT_IMPORT), f"module-level imports of later modules: {late}"

def test_imports_with_every_later_module_blocked():
    "Each fourier_nb.<module> imports (its package modules purged first) while every later notebook's module fails."
    code = f"""
import importlib, importlib.abc, json, sys
ORDER = {ORDER!r}
class Later(importlib.abc.MetaPathFinder):
    blocked = ()
    def find_spec(self, name, path=None, target=None):
        if name in self.blocked: raise ImportError(name + ' comes after ' + self.current + ' in the notebooks')
finder = Later(); sys.meta_path.insert(0, finder)
out = {{}}
for i, m in enumerate(ORDER):
    for k in [k for k in sys.modules if k == 'fourier_nb' or k.startswith('fourier_nb.')]: del sys.modules[k]
    finder.current, finder.blocked = m, tuple('fourier_nb.' + x for x in ORDER[i + 1:])
    try: importlib.import_module('fourier_nb.' + m); out[m] = 'ok'
    except Exception as e: out[m] = f'{{type(e).__name__}}: {{e}}'
print(json.dumps(out))
"""
    r = run_blocked(code)
    assert r.returncode == 0, r.stderr[-2000:]
    bad = {m: v for m, v in json.loads(r.stdout.strip().splitlines()[-1]).items() if v != 'ok'}
    assert not bad, bad
