"""Which task a model solves, and the local objective that suits it."""

# The dense objective of each task, the one mmman's own configs use
# (configs/_base_/mmman/*_local.py): CenterNet heatmaps at 0.1 of their loss
# scale for detection (docs/results.md#detection-quality), MMSeg's FCNHead
# for segmentation, the DGL-style image classifier for classification.
DEFAULT_AUX_HEADS = dict(
    det=dict(type='DenseDetAuxHead', loss_weight=0.1),
    seg=dict(type='DecodeAuxHead'),
    cls=dict(type='ImageClassAuxHead'))


def model_task(model) -> str:
    """``'det'``, ``'seg'`` or ``'cls'`` for MMDet detectors, MMSeg
    segmentors and MMPretrain classifiers."""
    for task, module, cls in (('det', 'mmdet.models.detectors',
                                'BaseDetector'),
                              ('seg', 'mmseg.models.segmentors',
                               'BaseSegmentor'),
                              ('cls', 'mmpretrain.models.classifiers',
                               'BaseClassifier')):
        try:
            base = getattr(__import__(module, fromlist=[cls]), cls)
        except ImportError:
            continue
        if isinstance(model, base):
            return task
    raise TypeError(f'{type(model).__name__} is no MMDet detector, MMSeg '
                    'segmentor or MMPretrain classifier.')


def default_aux_head(model) -> dict:
    """The local objective of ``model``'s task (a copy); the image-level
    classifier for models of no known task."""
    try:
        task = model_task(model)
    except TypeError:
        task = 'cls'
    return dict(DEFAULT_AUX_HEADS[task])
