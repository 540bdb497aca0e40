"""Teacher training: a deterministic, resumable loop on in-memory tensors or streamed batches."""

from .importer import ImportResult, exported_program, import_teacher, load_program
from .teacher import (
    Evaluation,
    TeacherJob,
    TeacherResult,
    build_model_for,
    evaluate_model,
    model_args_for,
    teacher_folder,
    train_teacher,
)
from .trainer import AUGMENTS, OPTIMIZERS, EpochResult, TrainConfig, augment_batch, evaluate, set_threads, train

__all__ = [
    "AUGMENTS",
    "OPTIMIZERS",
    "EpochResult",
    "Evaluation",
    "ImportResult",
    "TeacherJob",
    "TeacherResult",
    "TrainConfig",
    "augment_batch",
    "build_model_for",
    "evaluate",
    "evaluate_model",
    "exported_program",
    "import_teacher",
    "load_program",
    "model_args_for",
    "set_threads",
    "teacher_folder",
    "train",
    "train_teacher",
]
