"""k-means weight sharing and int8 quantization."""

import pytest
import torch
import torch.nn.functional as F

from pakd.models import build_model
from pakd.quant import (
    Int8Quantizer,
    KMeansConfig,
    WeightSharing,
    dequantize_per_channel,
    kmeans_1d,
    quantize_per_channel,
)


def test_kmeans_finds_separated_clusters_with_linear_init():
    torch.manual_seed(0)
    values = torch.cat([torch.randn(500) * 0.01 + c for c in (-1.0, 0.2, 3.0)])
    centroids, assign = kmeans_1d(values, 3)
    assert torch.allclose(centroids, torch.tensor([-1.0, 0.2, 3.0]), atol=0.01)
    assert assign.bincount().tolist() == [500, 500, 500]


@pytest.mark.slow
def test_weight_sharing_limits_distinct_values_and_keeps_zeros():
    torch.manual_seed(0)
    model = build_model("lenet5")
    with torch.no_grad():
        model.classifier[1].weight[:, :400] = 0
    ws = WeightSharing(KMeansConfig(bits={"conv": 4, "linear": 2}))
    ws.setup(model)
    fc = model.classifier[1].weight
    assert bool((fc[:, :400] == 0).all())
    assert fc[fc != 0].unique().numel() <= 4
    conv = model.features[0].weight
    assert conv.unique().numel() <= 16


@pytest.mark.slow
def test_centroid_fine_tuning_moves_shared_values_and_stays_shared():
    torch.manual_seed(0)
    model = build_model("lenet-300-100")
    ws = WeightSharing(KMeansConfig(bits={"conv": 8, "linear": 3}))
    ws.setup(model)
    before = {n: c.clone() for n, c in ws.codebooks.items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(3):
        opt.zero_grad()
        F.cross_entropy(model(torch.randn(16, 1, 28, 28)), torch.randint(0, 10, (16,))).backward()
        opt.step()
        ws.on_step(model, step)
    assert any(not torch.equal(before[n], ws.codebooks[n]) for n in before)
    assert model[1].weight.unique().numel() <= 8


def test_int8_per_channel_error_is_within_half_a_step():
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3)
    q, scales = quantize_per_channel(w)
    assert q.dtype == torch.int8 and scales.shape == (16,)
    err = (dequantize_per_channel(q, scales) - w).abs().reshape(16, -1).amax(1)
    assert bool((err <= scales / 2 + 1e-7).all())


def test_int8_quantizer_snaps_to_grid():
    model = build_model("lenet5")
    Int8Quantizer().setup(model)
    w = model.features[0].weight
    q, s = quantize_per_channel(w)
    assert torch.allclose(dequantize_per_channel(q, s), w, atol=1e-6)
