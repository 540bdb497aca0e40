"""Data over the memory budget streams through DataLoader workers: the budget holds, and the
batches, the statistics and the trained weights are the same as with the data in memory."""

from __future__ import annotations

import torch

from pakd.data import StreamSplit, load_data
from pakd.data.stream import in_flight_bytes
from pakd.models import build_model
from pakd.train import TrainConfig, evaluate, train


def test_over_the_budget_the_data_streams_and_the_budget_holds(folder):
    budget = 100 * 1024  # the 48 images are 144 KiB as float32
    mem, st = load_data(str(folder)), load_data(str(folder), memory=budget)
    assert not mem.streaming and mem.nbytes > budget
    assert st.streaming and isinstance(st.train, StreamSplit)
    assert st.nbytes <= budget  # labels and indices only
    batch = 4
    workers = st.train.workers_for(batch)
    assert workers >= 1  # room for worker batches
    assert in_flight_bytes(workers, batch * st.train.sample_bytes) <= budget
    tiny = load_data(str(folder), memory=8 * 1024)  # not even 3 batches: made one at a time, here
    assert tiny.train.workers_for(batch) == 0
    assert st.mean == mem.mean and st.std == mem.std  # the same pass, the same statistics
    order = torch.randperm(len(mem.train), generator=torch.Generator().manual_seed(0))
    streamed = list(st.train.batches(batch, order))
    assert torch.equal(torch.cat([x for x, _ in streamed]), mem.train.images[order])
    assert torch.equal(torch.cat([y for _, y in streamed]), mem.train.labels[order])
    assert torch.equal(st.test.take(torch.tensor([3, 0])).images, mem.test.images[[3, 0]])


def test_streamed_training_gives_the_same_weights(folder):
    results = []
    for memory in (None, 100 * 1024):
        data = load_data(str(folder), memory=memory)
        torch.manual_seed(0)
        model = build_model("lenet5", in_channels=3, num_classes=3, input_size=16)
        cfg = TrainConfig(epochs=2, batch_size=4, lr=0.01, augment="crop", seed=0, threads=1)
        history = train(model, data.train, data.val, cfg)
        results.append((model.state_dict(), [h.train_loss for h in history], evaluate(model, data.test)))
    (sa, la, ea), (sb, lb, eb) = results
    assert la == lb and ea == eb
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_factory_data_streams_too(factory_module):
    mem = load_data(f"{factory_module}:make_no_targets")
    st = load_data(f"{factory_module}:make_no_targets", memory=4096)
    assert st.streaming and torch.equal(st.train.labels, mem.train.labels)
    assert torch.equal(torch.cat([x for x, _ in st.test.batches(5)]), mem.test.images)
