"""Write a per-block comparison as JSON, a markdown table and a plot."""
import json
import os
import os.path as osp
from typing import Dict, List


def write_block_report(out_dir: str, stem: str, title: str, ylabel: str,
                       values: Dict[str, List[float]],
                       units: List[str], meta: dict) -> List[str]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png``.

    Args:
        values (dict): Method name -> one value per block.
        units (list[str]): The unit ending each block (table rows).
        meta (dict): Saved in the JSON beside the values (inputs, options).
    Returns:
        list[str]: The paths written.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = [osp.join(out_dir, f'{stem}.{ext}') for ext in ('json', 'md',
                                                           'png')]
    with open(paths[0], 'w') as f:
        json.dump(dict(meta, title=title, units=units, values=values), f,
                  indent=2)
    names = list(values)
    lines = [f'| block (ends at) | {" | ".join(names)} |',
             '|---' * (len(names) + 1) + '|']
    for k, unit in enumerate(units):
        cells = ' | '.join(f'{values[n][k]:.3g}' for n in names)
        lines.append(f'| {k + 1} ({unit}) | {cells} |')
    with open(paths[1], 'w') as f:
        f.write(f'{title}\n\n' + '\n'.join(lines) + '\n')
    fig, ax = plt.subplots(figsize=(6, 3.6))
    blocks = list(range(1, len(units) + 1))
    for name in names:
        ax.plot(blocks, values[name], marker='o', markersize=3, label=name)
    ax.set_xlabel('block')
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=120)
    plt.close(fig)
    return paths
