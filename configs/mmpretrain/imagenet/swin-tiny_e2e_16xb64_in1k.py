# Swin-T on ImageNet, end to end: MMPretrain's own config (model, data,
# AdamW, warm-up + cosine schedule over 300 epochs, Mixup/CutMix), unchanged.
_base_ = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'
