# ConvNeXt-T on ImageNet, end to end: MMPretrain's own config (model, data,
# AdamW, warm-up + cosine schedule over 300 epochs, Mixup/CutMix, model EMA),
# unchanged.
_base_ = 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'
