"""Layering: each package of mmman imports only the packages that
docs/architecture.md allows it (its table "Packages" is read here), in any
of Python's import forms; e.g. ``mmman/local`` (the method) imports nothing
of ``mmman.tasks`` (the task adapters) or ``mmman.engine`` (the optim
wrapper), and ``mmman/utils`` nothing of mmman.

Every ``.py`` file under the package is parsed with :mod:`ast`; each
``import``/``from ... import`` statement anywhere in it (module level,
functions, ``if TYPE_CHECKING`` blocks) is resolved to the absolute module
names it can load, relative imports against the file's own package. This
module needs only the standard library.
"""
import ast
import importlib.util
import os
import os.path as osp
import re
import shutil

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MAP = osp.join(ROOT, 'docs', 'architecture.md')


def allowed_imports(path=MAP):
    """``{package: set of mmman packages it may import}`` from the map's
    table (rows ``| `mmman.x` | owns | `mmman.y`, ... or – |``)."""
    rules = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if len(cells) == 3 and re.fullmatch(r'`mmman\.\w+`', cells[0]):
                rules[cells[0].strip('`')] = set(
                    re.findall(r'`(mmman\.\w+)`', cells[2]))
    return rules


def forbidden_imports(rules):
    """``{package dir: packages none of its files may import}``."""
    return {
        name.replace('.', '/'): tuple(
            sorted(set(rules) - allowed - {name}))
        for name, allowed in rules.items()
    }


RULES = forbidden_imports(allowed_imports())


def imported_modules(source, package):
    """Absolute names of the modules each import in ``source`` may load.

    ``package`` is the package the file belongs to (``mmman.local`` for both
    ``mmman/local/x.py`` and ``mmman/local/__init__.py``): relative imports
    resolve against it. ``from P import n`` yields ``P`` and ``P.n`` (``n``
    may be a submodule: ``from .. import tasks`` loads ``mmman.tasks``).
    Returns ``[(lineno, name), ...]`` in source order.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = '.' * node.level + (node.module or '')
            base = importlib.util.resolve_name(base, package)
            found.append((node.lineno, base))
            found += [(node.lineno, f'{base}.{alias.name}')
                      for alias in node.names if alias.name != '*']
    return sorted(found)


def is_within(name, packages):
    return any(name == p or name.startswith(p + '.') for p in packages)


def layering_violations(package_dir, forbidden, root=ROOT):
    """``['path:line imports name', ...]`` for every file under
    ``package_dir`` (recursively) that imports one of ``forbidden``."""
    bad = []
    top = osp.join(root, package_dir)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
        package = osp.relpath(dirpath, root).replace(os.sep, '.')
        for name in sorted(filenames):
            if not name.endswith('.py'):
                continue
            path = osp.join(dirpath, name)
            with open(path, encoding='utf-8') as f:
                source = f.read()
            for lineno, module in imported_modules(source, package):
                if is_within(module, forbidden):
                    bad.append(f'{osp.relpath(path, root)}:{lineno} '
                               f'imports {module}')
    return bad


# The four forms the earlier check (``ImportFrom`` with an absolute
# ``mmman.engine`` module or 'tasks' in the module name) could not see, and
# some around them, as written in a file of the ``mmman.local`` package.
FORBIDDEN_FORMS = {
    'import mmman.engine': 'mmman.engine',
    'import mmman.tasks.x': 'mmman.tasks.x',
    'from ..engine import LocalOptimWrapper': 'mmman.engine',
    'from .. import tasks': 'mmman.tasks',
    'import mmman.engine as engine': 'mmman.engine',
    'from mmman import engine': 'mmman.engine',
    'from mmman.tasks.targets import image_level_targets':
    'mmman.tasks.targets',
    'from ..tasks import *': 'mmman.tasks',
    'def f():\n    from ..engine.hooks import LocalLearningHook':
    'mmman.engine.hooks',
}
ALLOWED_FORMS = [
    'from .targets import LocalTargets',
    'from . import man',
    'from mmman.utils.memory import PhaseMeter',
    'from ..utils import memory',
    'import torch.nn as nn',
    'from .task_targets import x',  # not mmman.tasks: a name containing it
    'import mmman.engineering',
]


@pytest.mark.parametrize('source', list(FORBIDDEN_FORMS))
def test_every_import_form_is_resolved(source):
    names = [name for _, name in imported_modules(source, 'mmman.local')]
    assert FORBIDDEN_FORMS[source] in names, names
    assert is_within(FORBIDDEN_FORMS[source], RULES['mmman/local'])


@pytest.mark.parametrize('source', ALLOWED_FORMS)
def test_allowed_imports_are_not_flagged(source):
    names = [name for _, name in imported_modules(source, 'mmman.local')]
    assert not any(is_within(n, RULES['mmman/local']) for n in names), names


def test_relative_import_past_the_top_is_an_error():
    with pytest.raises(ImportError):
        imported_modules('from .... import x', 'mmman.local')


def test_the_check_finds_all_four_forms_in_a_package(tmp_path):
    """The whole check (walk, package of each file, resolution) on a
    throw-away ``mmman/local`` with one file per form, one in a subpackage."""
    local = tmp_path / 'mmman' / 'local'
    (local / 'sub').mkdir(parents=True)
    for path in (tmp_path / 'mmman', local, local / 'sub'):
        (path / '__init__.py').write_text('')
    (local / 'a.py').write_text('import mmman.engine\n')
    (local / 'b.py').write_text('import os\nimport mmman.tasks.x\n')
    (local / 'c.py').write_text('def f():\n    from ..engine import W\n')
    (local / '__init__.py').write_text('from .a import *\n'
                                       'from .. import tasks\n')
    (local / 'sub' / 'd.py').write_text('from ...tasks import heads\n'
                                        'from ..a import y\n')
    bad = layering_violations('mmman/local', RULES['mmman/local'],
                              root=str(tmp_path))
    assert bad == [
        'mmman/local/__init__.py:2 imports mmman.tasks',
        'mmman/local/a.py:1 imports mmman.engine',
        'mmman/local/b.py:2 imports mmman.tasks.x',
        'mmman/local/c.py:2 imports mmman.engine',
        'mmman/local/c.py:2 imports mmman.engine.W',
        'mmman/local/sub/d.py:1 imports mmman.tasks',
        'mmman/local/sub/d.py:1 imports mmman.tasks.heads',
    ]


def test_the_map_names_every_package():
    packages = sorted(
        f'mmman.{d}' for d in os.listdir(osp.join(ROOT, 'mmman'))
        if osp.isfile(osp.join(ROOT, 'mmman', d, '__init__.py')))
    assert sorted(allowed_imports()) == packages
    assert RULES['mmman/utils'] == tuple(
        sorted(p for p in packages if p != 'mmman.utils'))
    assert 'mmman.engine' in RULES['mmman/local']


@pytest.mark.parametrize('package_dir', sorted(RULES))
def test_layering(package_dir):
    assert osp.isfile(osp.join(ROOT, package_dir, '__init__.py'))
    assert layering_violations(package_dir, RULES[package_dir]) == []


@pytest.mark.parametrize('package_dir, line', [
    ('mmman/local', 'from ..engine.hooks import LocalLearningHook'),
    ('mmman/utils', 'from mmman.tasks import infer_num_classes'),
    ('mmman/heads', 'import mmman.engine.optim_wrapper'),
    ('mmman/tasks', 'from .. import heads'),
])
def test_a_broken_rule_fails_on_a_copy_of_the_package(tmp_path, package_dir,
                                                      line):
    """The real package, copied, with one import that breaks its rule."""
    shutil.copytree(osp.join(ROOT, 'mmman'), tmp_path / 'mmman',
                    ignore=shutil.ignore_patterns('__pycache__'))
    target = tmp_path / package_dir / '__init__.py'
    target.write_text(target.read_text() + f'\n{line}\n')
    bad = layering_violations(package_dir, RULES[package_dir],
                              root=str(tmp_path))
    assert bad and all(b.startswith(f'{package_dir}/__init__.py') for b in bad)
