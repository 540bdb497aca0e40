"""Teacher training: a deterministic, resumable loop on in-memory tensors."""

from .importer import ImportResult, exported_program, import_teacher, load_program
from .teacher import Evaluation, TeacherJob, TeacherResult, evaluate_model, teacher_folder, train_teacher
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
    "evaluate",
    "evaluate_model",
    "exported_program",
    "import_teacher",
    "load_program",
    "set_threads",
    "teacher_folder",
    "train",
    "train_teacher",
]
