# The MAN paper's CIFAR-10 / SVHN / STL-10 schedule: SGD with Nesterov
# momentum 0.9, weight decay 1e-4, cosine annealing over 400 epochs;
# lr 0.8 at batch 1024 (STL-10: 0.1 at batch 128).
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.8, momentum=0.9, weight_decay=1e-4, nesterov=True))
param_scheduler = dict(
    type='CosineAnnealingLR', T_max=400, by_epoch=True, begin=0, end=400)
train_cfg = dict(by_epoch=True, max_epochs=400, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
