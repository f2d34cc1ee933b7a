from .config import (DatasetNotFoundError, add_common_args, build_runner,
                     check_data_roots, enable_amp, load_config,
                     resolve_work_dir)

__all__ = [
    'DatasetNotFoundError', 'add_common_args', 'build_runner',
    'check_data_roots',
    'enable_amp', 'load_config', 'resolve_work_dir'
]
