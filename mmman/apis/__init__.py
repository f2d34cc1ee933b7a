from .config import (DatasetNotFoundError, add_common_args, amp_optim_wrapper,
                     build_runner, check_data_roots, close_distributed,
                     configure_balance, enable_amp, init_cpu_distributed,
                     load_config, optim_wrapper_type, pipeline_img_scale,
                     resolve_work_dir)

__all__ = [
    'DatasetNotFoundError', 'add_common_args', 'amp_optim_wrapper',
    'build_runner', 'check_data_roots', 'close_distributed',
    'configure_balance', 'enable_amp', 'init_cpu_distributed', 'load_config',
    'optim_wrapper_type', 'pipeline_img_scale', 'resolve_work_dir'
]
