from .config import (DatasetNotFoundError, check_data_roots, enable_amp,
                     resolve_work_dir)

__all__ = [
    'DatasetNotFoundError', 'check_data_roots', 'enable_amp',
    'resolve_work_dir'
]
