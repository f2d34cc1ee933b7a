"""What mmman's tools share: config loading, data checks, AMP, balancing set-up
and process groups."""
from .amp import amp_optim_wrapper, enable_amp, optim_wrapper_type
from .balance_setup import configure_balance, pipeline_img_scale
from .config import add_common_args, build_runner, load_config, resolve_work_dir
from .data_checks import DatasetNotFoundError, check_data_roots
from .distributed import close_distributed, init_cpu_distributed
from .measurement import (add_measurement_args, build_for_measurement,
                          build_model_for_measurement)
from .parallel_setup import configure_block_parallel

__all__ = [
    'DatasetNotFoundError', 'add_common_args', 'add_measurement_args',
    'amp_optim_wrapper',
    'build_for_measurement', 'build_model_for_measurement',
    'build_runner', 'check_data_roots', 'close_distributed',
    'configure_balance', 'configure_block_parallel', 'enable_amp', 'init_cpu_distributed', 'load_config',
    'optim_wrapper_type', 'pipeline_img_scale', 'resolve_work_dir'
]
