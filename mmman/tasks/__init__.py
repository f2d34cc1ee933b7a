from .targets import image_level_targets, infer_num_classes

__all__ = ['image_level_targets', 'infer_num_classes']
