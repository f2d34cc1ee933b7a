"""A local training step's wall-clock time, split at the block boundaries."""
import copy
import time
from typing import List, Tuple


def step_phases(model, wrapper, batch) -> List[Tuple[str, float]]:
    """``[(phase, seconds), ...]`` of one training step, in order:
    ``'preprocess + stem'``, ``'block k'`` (its forward), ``'aux k'`` (eta,
    head and the block's local backward, run in the pre-hook of the next
    block's first unit), ``'tail forward'`` (neck, heads, losses) and
    ``'tail backward'`` and ``'step'`` (clipping, the optimizer and EMA
    steps)."""
    plan, marks = wrapper.plan, []

    def mark(tag):
        marks.append((time.perf_counter(), tag))

    first = plan.units[0].module
    handles = [first.register_forward_pre_hook(lambda m, a: mark('block 1'))]
    for k in range(plan.num_blocks - 1):
        unit = plan.units[plan.ends[k] + 1].module
        # before the wrapper's own pre-hook (armed in the step): the aux
        # phase starts here and ends when the unit's first layer runs
        handles.append(unit.register_forward_pre_hook(
            lambda m, a, k=k: mark(f'aux {k + 1}')))
        handles += [
            child.register_forward_pre_hook(
                lambda m, a, k=k: mark(f'block {k + 2}'))
            for child in list(unit.children())[:1]
        ]
    handles.append(plan.units[-1].module.register_forward_hook(
        lambda m, a, o: mark('tail forward')))
    update, step = wrapper.update_params, wrapper.step

    def timed_update(loss, **kwargs):
        mark('tail backward')
        return update(loss, **kwargs)

    def timed_step(**kwargs):
        mark('step')
        return step(**kwargs)

    wrapper.update_params, wrapper.step = timed_update, timed_step
    try:
        mark('preprocess + stem')
        model.train_step(copy.deepcopy(batch), wrapper)
        mark('end')
    finally:
        del wrapper.update_params, wrapper.step
        for h in handles:
            h.remove()
    return [(tag, marks[i + 1][0] - t) for i, (t, tag) in enumerate(marks[:-1])]
