"""Teacher training: a deterministic, resumable loop on in-memory tensors."""

from .teacher import TeacherJob, TeacherResult, train_teacher
from .trainer import AUGMENTS, OPTIMIZERS, EpochResult, TrainConfig, augment_batch, evaluate, set_threads, train

__all__ = [
    "AUGMENTS",
    "OPTIMIZERS",
    "EpochResult",
    "TeacherJob",
    "TeacherResult",
    "TrainConfig",
    "augment_batch",
    "evaluate",
    "set_threads",
    "train",
    "train_teacher",
]
