# ResNet-32 of He et al. 2016 for 32x32 images (3 stages x 5 basic blocks,
# 16/32/64 channels): mmman's CifarResNet, MMPretrain's ImageClassifier.
# `CifarResNet` is registered by mmman: mmman's tools/train.py and test.py
# import it (MMPretrain's own tools would need custom_imports=['mmman']).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CifarResNet',
        depth=32,
        # the stem is a local-learning unit of its own, as the MAN paper
        # counts modules: K=16 = stem + 15 residual units (the public code's
        # 15 modules, stem merged into the first, are num_blocks=15)
        stem_unit=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
