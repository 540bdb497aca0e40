"""Teacher training: a deterministic, resumable loop on in-memory tensors."""

from .teacher import Evaluation, TeacherJob, TeacherResult, evaluate_model, teacher_folder, train_teacher
from .trainer import AUGMENTS, OPTIMIZERS, EpochResult, TrainConfig, augment_batch, evaluate, set_threads, train

__all__ = [
    "AUGMENTS",
    "OPTIMIZERS",
    "EpochResult",
    "Evaluation",
    "TeacherJob",
    "TeacherResult",
    "TrainConfig",
    "augment_batch",
    "evaluate",
    "evaluate_model",
    "set_threads",
    "teacher_folder",
    "train",
    "train_teacher",
]
