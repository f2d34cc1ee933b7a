"""Files each classification dataset type needs under its root.

Read by ``mmman.apis.check_data_roots`` (no dataset is imported): a missing
file stops a run with one message naming its path. ``{split}`` is the
dataset's ``split``, or the type's default split; without either (ImageNet
given by ``ann_file``) nothing is checked.
"""
# type: (default split, files under data_root/data_prefix)
DATASET_FILES = {
    'CIFAR10': ('train', ('cifar-10-batches-py', )),
    'CIFAR100': ('train', ('cifar-100-python', )),
    'SVHN': ('train', ('{split}_32x32.mat', )),
    'STL10': ('train', ('{split}_X.bin', '{split}_y.bin')),
    'ImageNet': (None, ('{split}', )),
}
