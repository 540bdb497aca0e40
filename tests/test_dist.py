"""pakd.dist's collectives in two real gloo processes (torch.multiprocessing, no launcher): the
agreement check, DistributedSampler sharding, sharded evaluation and the CPU synchronized batch norm."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from torch import nn

from pakd import dist
from tests.data.conftest import make_npz

WORLD = 2


CHECKS = (
    "_agree_same_and_different",
    "_sharding",
    "_evaluation",
    "_sync_bn",
    "_streamed_training",
    "_micro_batched_training",
)


def _worker(rank: int, init: str, out: str) -> None:
    """Every check in turn on this rank; each one's traceback, if any, in ``error-CHECK-RANK``."""
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        for name in CHECKS:
            try:
                globals()[name](rank, Path(out))
            except Exception:
                Path(out, f"error-{name}-{rank}").write_text(traceback.format_exc())
            tdist.barrier()
    finally:
        tdist.destroy_process_group()


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    """The checks below, run once in two gloo processes (one start-up for all of them)."""
    out = tmp_path_factory.mktemp("dist")
    make_npz(out / "images.npz")
    mp.spawn(_worker, args=(f"file://{out / 'rendezvous'}", str(out)), nprocs=WORLD, join=True)
    return out


def _errors(out: Path, name: str) -> str:
    return "\n".join(p.read_text() for p in sorted(out.glob(f"error-{name}-*")))


# -- the checks, run on both ranks ---------------------------------------------------------


def _agree_same_and_different(rank: int, out: Path) -> None:
    same = {"mask": torch.tensor([True, False, True]), "channels": {"conv1": 4}}
    digests = dist.agree("the masks", same)
    assert len(digests) == WORLD and len(set(digests)) == 1
    differs = {"mask": torch.tensor([True, rank == 1, True]), "channels": {"conv1": 4}}
    try:
        dist.agree("the masks", differs)
    except dist.DistError as exc:
        (out / f"refused-{rank}").write_text(str(exc))


def _sharding(rank: int, out: Path) -> None:
    from torch.utils.data import DistributedSampler

    order = torch.randperm(11, generator=torch.Generator().manual_seed(3))
    mine = dist.shard_order(order)
    reference: DistributedSampler[int] = DistributedSampler(
        list(range(11)), num_replicas=WORLD, rank=rank, shuffle=False
    )  # type: ignore[arg-type]
    assert mine.tolist() == order[list(reference)].tolist()
    parts: list[list[int]] = [[] for _ in range(WORLD)]
    tdist.all_gather_object(parts, mine.tolist())
    assert sorted(set(parts[0]) | set(parts[1])) == list(range(11))  # every sample, one padded twice
    assert len(parts[0]) == len(parts[1]) == 6
    assert dist.shard(list(range(5))) == list(range(rank, 5, WORLD))


def _evaluation(rank: int, out: Path) -> None:
    from pakd.data import load_digits
    from pakd.train import evaluate

    data = load_digits()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    dist.broadcast_module(model)
    sharded = evaluate(model, data.test, batch_size=64)
    with torch.no_grad():  # the whole test split at once, on each rank
        logits = model(data.test.images)
    assert sharded[0] == int((logits.argmax(1) == data.test.labels).sum()) / len(data.test)
    assert sharded[1] == pytest.approx(float(nn.functional.cross_entropy(logits, data.test.labels)), rel=1e-5)


def _sync_bn(rank: int, out: Path) -> None:
    torch.manual_seed(0)
    full = torch.randn(8, 3, 5, 5)
    reference = nn.BatchNorm2d(3)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    model = nn.Sequential(nn.BatchNorm2d(3))
    model[0].load_state_dict(reference.state_dict())
    dist.convert_sync_bn(model, "cpu")
    assert isinstance(model[0], dist.CpuSyncBatchNorm)
    x = full[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
    y = model(x)
    (y * torch.arange(1.0, 4.0).view(1, 3, 1, 1)).sum().backward()
    grads = [model[0].weight.grad.clone(), model[0].bias.grad.clone()]
    dist.all_reduce_(grads)  # what DDP does (sum, here not averaged)

    xr = full.clone().requires_grad_(True)
    yr = reference(xr)
    (yr * torch.arange(1.0, 4.0).view(1, 3, 1, 1)).sum().backward()
    torch.testing.assert_close(y, yr[rank * 4 : (rank + 1) * 4], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, xr.grad[rank * 4 : (rank + 1) * 4], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[0], reference.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1], reference.bias.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model[0].running_mean, reference.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[0].running_var, reference.running_var, rtol=1e-5, atol=1e-6)
    dist.unwrap_sync_bn(model)
    assert type(model[0]) is nn.BatchNorm2d and "process_group" not in model[0].__dict__


def _streamed_training(rank: int, out: Path) -> None:
    """Each rank's share streamed from an .npz (over a tiny memory budget) trains the weights the
    same share trains from tensors."""
    from pakd.data import StreamSplit, load_data
    from pakd.models import build_model
    from pakd.train import TrainConfig, train

    results = []
    for memory in (None, 8 * 1024):
        data = load_data(str(out / "images.npz"), memory=memory)
        assert isinstance(data.train, StreamSplit) == (memory is not None)
        torch.manual_seed(0)
        model = build_model("lenet5", in_channels=3, num_classes=3, input_size=16)
        cfg = TrainConfig(epochs=2, batch_size=4, lr=0.01, augment="crop", seed=0, threads=1)
        history = train(model, data.train, data.val, cfg)
        results.append((model.state_dict(), [(h.train_loss, h.val_top1) for h in history]))
    (sa, ha), (sb, hb) = results
    assert ha == hb
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    digests: list[str] = ["", ""]
    tdist.all_gather_object(digests, dist.digest(sa))
    assert digests[0] == digests[1]  # and every rank holds rank 0's model


def _micro_batched_training(rank: int, out: Path) -> None:
    """Each rank's share of 8 images run in parts of 2 (an activation budget of 2 images; DDP's
    all-reduce held back to the last part) trains the weights whole shares train, and the ranks
    end with one model."""
    import pakd.train.trainer as trainer
    from pakd.data import load_data
    from pakd.models import build_model
    from pakd.train import TrainConfig, train

    data = load_data(str(out / "images.npz"))
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.01, augment="crop", seed=0, threads=1)
    budget = trainer.STEP_ACTIVATION_BYTES
    states, starts = [], []
    try:
        for small in (False, True):
            torch.manual_seed(0)
            model = build_model("lenet5", in_channels=3, num_classes=3, input_size=16)
            if small:
                trainer.STEP_ACTIVATION_BYTES = 2 * trainer.activation_bytes(model, (3, 16, 16), "cpu", True)
            train(model, data.train, data.val, cfg, progress=lambda e, i: starts.append(i) if e == "start" else None)
            states.append(model.state_dict())
    finally:
        trainer.STEP_ACTIVATION_BYTES = budget
    assert [(s["batch"], s["micro_batch"]) for s in starts] == [(8, 8), (8, 2)]
    whole, parts = states
    assert all(torch.allclose(whole[k], parts[k], rtol=1e-4, atol=1e-6) for k in whole)
    digests: list[str] = ["", ""]
    tdist.all_gather_object(digests, dist.digest(parts))
    assert digests[0] == digests[1]


# -- the tests -----------------------------------------------------------------------------


def test_agree_passes_equal_state_and_refuses_a_difference_on_every_rank(ran):
    assert not _errors(ran, "_agree_same_and_different")
    for rank in range(WORLD):
        text = (ran / f"refused-{rank}").read_text()
        assert "disagree on the masks" in text and "rank(s) 1 differ from rank 0" in text


def test_shard_order_is_distributed_samplers_split_of_one_permutation(ran):
    assert not _errors(ran, "_sharding")


def test_sharded_evaluation_equals_the_single_process_one(ran):
    assert not _errors(ran, "_evaluation")


def test_cpu_sync_batch_norm_is_batch_norm_over_the_global_batch(ran):
    assert not _errors(ran, "_sync_bn")


def test_streamed_shards_train_the_weights_the_in_memory_shards_train(ran):
    assert not _errors(ran, "_streamed_training")


def test_micro_batched_shards_train_the_weights_whole_shards_train(ran):
    assert not _errors(ran, "_micro_batched_training")


def test_one_process_is_rank_0_of_1_and_changes_nothing():
    assert not tdist.is_initialized() and "WORLD_SIZE" not in os.environ
    w = dist.world()
    assert (w.rank, w.size, w.main, w.distributed) == (0, 1, True, False)
    order = torch.randperm(7)
    assert dist.shard_order(order) is order and dist.eval_shard(7) is None
    assert dist.rank_seed(5) == 5
    assert dist.from_main(lambda: 42) == 42
    model = nn.Linear(2, 2)
    assert dist.wrap(model, "cpu", dist.ParallelConfig(sync_bn=True)) is model


def test_unknown_backend_is_refused():
    from pakd.errors import PakdError

    with pytest.raises(PakdError, match="unknown backend 'mpi'"):
        dist.ParallelConfig(backend="mpi")
