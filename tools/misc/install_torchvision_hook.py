"""Install (or remove) the torchvision start-up hook in a site-packages dir.

    python tools/misc/install_torchvision_hook.py SITE_DIR [--force]

Run by ``tools/install.sh`` with the virtualenv's Python. Where torchvision
is installed and its C++ extension does not load into the installed torch,
copies ``mmman/utils/torchvision_compat.py`` into SITE_DIR as
``mmman_torchvision_compat.py`` with ``mmman_torchvision_compat.pth`` (see
that module); elsewhere removes both (an earlier install's copy or symlink).
``--force`` writes them without the check. Does not import mmman: the module
is loaded from its file.
"""
import argparse
import importlib.util
import os.path as osp
import sys

SOURCE = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'mmman',
    'utils', 'torchvision_compat.py')


def load_compat(path=SOURCE):
    spec = importlib.util.spec_from_file_location('_mmman_tv_compat', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('site_dir', help='the site-packages directory')
    parser.add_argument(
        '--force', action='store_true', help='write it without the check')
    args = parser.parse_args(argv)
    compat = load_compat()
    if args.force or compat.import_hook_needed():
        compat.write_import_hook(args.site_dir, SOURCE)
        print(f'[mmman] torchvision start-up hook: copied to {args.site_dir}'
              f'/{compat.HOOK_MODULE}.py (+ .pth); torchvision\'s C++ ops do '
              'not load here', file=sys.stderr)
    else:
        removed = compat.remove_import_hook(args.site_dir)
        print('[mmman] torchvision start-up hook: not needed (torchvision '
              'absent or its C++ ops load)' +
              (f'; removed {", ".join(removed)}' if removed else ''),
              file=sys.stderr)


if __name__ == '__main__':
    main()
