"""Batch norm over the global batch (runner/train/sync_bn.py), in-process.

W DDP ranks are W threads of this process: the module's `dist` says "initialised, world size W" and its
`all_reduce_sum` becomes an autograd function that sums the threads' tensors in the forward pass and their
gradients in the backward pass, as torch.distributed's differentiable all-reduce does across processes. A
W-rank step must then equal nn.BatchNorm2d on the concatenated batch: each rank's slice of the output, the
running statistics, and the gradients (summed over ranks for the parameters, as DDP reduces them).
`all_reduce_sum` itself runs on a real one-process gloo group.
"""

from __future__ import annotations

import copy
import threading
import types
import warnings

import pytest
import torch
import torch._dynamo  # noqa: F401  funcol's first all_reduce imports it (~2 s): paid at collection, not in a test
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
from torch import nn

from runner.train import sync_bn
from runner.train.sync_bn import GlobalBatchNorm2d, convert_sync_batchnorm

C = 3  # channels; the ranks' batches are uneven and H != W != C, so a wrong count or axis shows


class Ranks:
    """The collective of W threads: rank r deposits its tensor, all wait, all read the same sum."""

    def __init__(self, world: int):
        self.world = world
        self.barrier = threading.Barrier(world, timeout=10)
        self.slots = [None] * world
        self.local = threading.local()
        self.reductions = 0

    def reduce(self, rank, t):
        self.slots[rank] = t.detach().clone()
        self.barrier.wait()
        total = self.slots[0].clone()
        for other in self.slots[1:]:  # same order on every rank: every rank gets the same bits
            total = total + other
        self.barrier.wait()  # nobody overwrites a slot before all have read it
        if rank == 0:
            self.reductions += 1
        return total

    def all_reduce_sum(self, t):
        return _AllReduce.apply(t, self, self.local.rank)

    def run(self, step, inputs):
        """step(rank, input) on every rank at once (rank 0 on this thread); the results by rank."""
        results = [None] * self.world
        errors = []

        def work(rank):
            self.local.rank = rank
            try:
                results[rank] = step(rank, inputs[rank])
            except BaseException as e:
                errors.append(e)
                self.barrier.abort()  # the others stop waiting for this rank

        threads = [threading.Thread(target=work, args=(r,)) for r in range(1, self.world)]
        for t in threads:
            t.start()
        work(0)
        for t in threads:
            t.join(timeout=20)
        if errors:
            raise errors[0]
        return results


class _AllReduce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t, ranks, rank):
        ctx.ranks, ctx.rank = ranks, rank
        return ranks.reduce(rank, t)

    @staticmethod
    def backward(ctx, grad):
        return ctx.ranks.reduce(ctx.rank, grad.contiguous()), None, None


def fake_dist(initialized=True, world=2):
    def get_world_size():
        # torch.distributed raises without a process group: asking for the size then is a bug
        assert initialized, "get_world_size() without a process group"
        return world

    return types.SimpleNamespace(is_initialized=lambda: initialized, get_world_size=get_world_size)


def no_all_reduce(t):
    raise AssertionError("all_reduce_sum called where BatchNorm2d's local path is due")


@pytest.fixture
def ranks(monkeypatch):
    r = Ranks(2)
    monkeypatch.setattr(sync_bn, "dist", fake_dist(world=2))
    monkeypatch.setattr(sync_bn, "all_reduce_sum", r.all_reduce_sum)
    return r


def reference(**kwargs):
    """A BatchNorm2d in float64 whose state is nothing like the defaults: weight 1, bias 0, running stats 0/1
    would hide a swapped sign or an operator, so all are random."""
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(C, **kwargs).double()
    with torch.no_grad():
        if bn.affine:
            bn.weight.copy_(torch.tensor([1.5, -0.7, 0.3]))
            bn.bias.copy_(torch.tensor([0.2, -1.1, 0.9]))
        if bn.track_running_stats:
            bn.running_mean.copy_(torch.tensor([0.4, -0.3, 2.0]))
            bn.running_var.copy_(torch.tensor([1.7, 0.6, 3.0]))
            bn.num_batches_tracked.fill_(4)
    return bn


def global_copy(bn):
    g = GlobalBatchNorm2d(C, bn.eps, bn.momentum, bn.affine, bn.track_running_stats).double()
    g.load_state_dict(bn.state_dict())
    return g


def batches(step=0):
    """Two ranks' batches: 2 and 5 images of C × 4 × 6, means and scales far from 0 and 1."""
    g = torch.Generator().manual_seed(100 + step)
    shift = torch.tensor([3.0, -2.0, 0.5]).view(1, C, 1, 1)
    scale = torch.tensor([2.0, 0.5, 1.3]).view(1, C, 1, 1)
    make = lambda n: torch.randn(n, C, 4, 6, generator=g, dtype=torch.float64) * scale + shift  # noqa: E731
    return [make(2), make(5)]


def upstream(xs, step=0):
    g = torch.Generator().manual_seed(200 + step)
    return [torch.randn(x.shape, generator=g, dtype=torch.float64) for x in xs]


def assert_same_state(module, bn):
    if bn.track_running_stats:
        torch.testing.assert_close(module.running_mean, bn.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(module.running_var, bn.running_var, rtol=1e-12, atol=1e-12)
        assert module.num_batches_tracked.item() == bn.num_batches_tracked.item()
    else:
        assert module.running_mean is None and module.running_var is None


def check_against_one_process(ranks, bn, steps):
    """`steps` training steps on two ranks against BatchNorm2d on the concatenated batches: outputs, running
    statistics, input gradients and parameter gradients (summed over ranks) at every step."""
    modules = [global_copy(bn), global_copy(bn)]
    for step in range(steps):
        xs = batches(step)
        gs = upstream(xs, step)

        def rank_step(rank, x, gs=gs):
            x = x.clone().requires_grad_(True)
            module = modules[rank]
            module.zero_grad()
            out = module(x)
            (out * gs[rank]).sum().backward()
            grads = [p.grad.clone() for p in module.parameters()]
            return out.detach(), x.grad, grads

        results = ranks.run(rank_step, xs)

        bn.zero_grad()
        x_all = torch.cat(xs).requires_grad_(True)
        out_all = bn(x_all)
        (out_all * torch.cat(gs)).sum().backward()

        outs = [r[0] for r in results]
        torch.testing.assert_close(torch.cat(outs), out_all.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(torch.cat([r[1] for r in results]), x_all.grad, rtol=1e-10, atol=1e-12)
        for i, p in enumerate(bn.parameters()):
            torch.testing.assert_close(results[0][2][i] + results[1][2][i], p.grad, rtol=1e-10, atol=1e-12)
        for module in modules:
            assert_same_state(module, bn)
    return modules


def test_two_ranks_normalise_over_the_global_batch_as_one_process_does(ranks):
    bn = reference(momentum=0.3)
    modules = check_against_one_process(ranks, bn, steps=2)
    assert modules[0].num_batches_tracked.item() == 6  # 4 before, one a step
    assert ranks.reductions == 2 * 2 * 2  # mean and variance, forward and backward, two steps


def test_cumulative_average_without_momentum_matches_batchnorm2d(ranks):
    # momentum=None: the running stats are the average over all batches, 1/num_batches_tracked a step
    bn = reference(momentum=None)
    with torch.no_grad():
        bn.num_batches_tracked.zero_()
    check_against_one_process(ranks, bn, steps=3)
    assert bn.num_batches_tracked.item() == 3


def test_without_affine_parameters_only_the_normalisation_is_applied(ranks):
    bn = reference(affine=False, momentum=0.2, eps=1e-3)
    modules = check_against_one_process(ranks, bn, steps=1)
    assert modules[0].weight is None and modules[0].bias is None


def test_without_running_stats_the_output_and_gradients_still_use_the_global_batch(ranks):
    bn = reference(track_running_stats=False, eps=1e-2)
    modules = check_against_one_process(ranks, bn, steps=1)
    assert modules[0].num_batches_tracked is None


def test_the_eps_is_added_to_the_global_variance(ranks):
    # a large eps next to a small variance: var - eps or eps left out would change the output by far
    bn = reference(eps=0.5)
    xs = [x * 0.1 for x in batches()]
    modules = [global_copy(bn), global_copy(bn)]
    outs = ranks.run(lambda rank, x: modules[rank](x), xs)
    torch.testing.assert_close(torch.cat(outs), bn(torch.cat(xs)), rtol=1e-12, atol=1e-12)


def test_eval_mode_uses_the_running_statistics_without_communicating(monkeypatch):
    monkeypatch.setattr(sync_bn, "dist", fake_dist(world=2))
    monkeypatch.setattr(sync_bn, "all_reduce_sum", no_all_reduce)
    bn = reference().eval()
    module = global_copy(bn).eval()
    x = batches()[1]
    torch.testing.assert_close(module(x), bn(x), rtol=1e-12, atol=1e-12)
    assert_same_state(module, bn)
    assert module.num_batches_tracked.item() == 4  # untouched


def assert_batchnorm2d_on_the_local_batch(x):
    """The module on `x` gives BatchNorm2d's output and leaves its state, with no all-reduce; returns it."""
    bn = reference(momentum=0.3)
    module = global_copy(bn)
    torch.testing.assert_close(module(x), bn(x), rtol=1e-12, atol=1e-12)
    assert_same_state(module, bn)
    return module


@pytest.mark.parametrize(
    "dist_state",
    [fake_dist(initialized=False, world=2), fake_dist(initialized=True, world=1)],
    ids=["no process group", "world size 1"],
)
def test_without_other_ranks_it_is_batchnorm2d_on_the_local_batch(monkeypatch, dist_state):
    monkeypatch.setattr(sync_bn, "dist", dist_state)
    monkeypatch.setattr(sync_bn, "all_reduce_sum", no_all_reduce)
    module = assert_batchnorm2d_on_the_local_batch(batches()[1])
    assert module.num_batches_tracked.item() == 5


def test_the_global_path_keeps_the_inputs_device_and_dtype(ranks):
    # meta tensors carry device and dtype through without arithmetic: the count must be made on x's device
    # (a CPU count next to meta sums fails) and in x's dtype (a float32 count would promote bfloat16 sums)
    modules = []
    for _ in range(2):
        with torch.device("meta"):
            modules.append(GlobalBatchNorm2d(C).to(torch.bfloat16))
    xs = [torch.empty(n, C, 4, 6, device="meta", dtype=torch.bfloat16) for n in (2, 5)]
    outs = ranks.run(lambda rank, x: modules[rank](x), xs)
    for out, x in zip(outs, xs, strict=True):
        assert out.device.type == "meta" and out.dtype == torch.bfloat16 and out.shape == x.shape
    assert modules[0].running_mean.dtype == torch.bfloat16


# all_reduce_sum on a real process group: one gloo rank, so the sum is the tensor itself and the backward
# passes the gradient through; what is checked is the path it takes and that autograd goes through it.


@pytest.fixture
def gloo(tmp_path):
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path / 'store'}")
    try:
        yield
    finally:
        dist.destroy_process_group()


def reduce_and_backward():
    t = torch.tensor([1.0, -2.0, 3.5], requires_grad=True)
    out = sync_bn.all_reduce_sum(t)
    (out * torch.tensor([4.0, 5.0, -6.0])).sum().backward()
    return out, t.grad


def test_all_reduce_sum_uses_functional_collectives_with_autograd(gloo, monkeypatch):
    calls = []
    real = funcol.all_reduce

    def spy(t, op, group):
        calls.append((op, group))
        return real(t, op, group)

    monkeypatch.setattr(funcol, "all_reduce", spy)
    out, grad = reduce_and_backward()
    assert calls == [("sum", dist.group.WORLD)]
    assert torch.equal(out.detach(), torch.tensor([1.0, -2.0, 3.5]))
    assert torch.equal(grad, torch.tensor([4.0, 5.0, -6.0]))


def test_all_reduce_sum_falls_back_to_torch_distributed_nn_on_older_torch(gloo, monkeypatch):
    # torch before all_reduce_backward: funcol's all_reduce has no autograd there, so it must not be used
    monkeypatch.delattr(funcol, "all_reduce_backward")
    monkeypatch.setattr(funcol, "all_reduce", no_all_reduce)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.distributed.nn.functional is deprecated here
        out, grad = reduce_and_backward()
    assert torch.equal(out.detach(), torch.tensor([1.0, -2.0, 3.5]))
    assert torch.equal(grad, torch.tensor([4.0, 5.0, -6.0]))


def test_one_gloo_rank_takes_batchnorm2ds_path(gloo, monkeypatch):
    monkeypatch.setattr(sync_bn, "all_reduce_sum", no_all_reduce)
    assert_batchnorm2d_on_the_local_batch(batches()[0])


# convert_sync_batchnorm


class CustomBN(nn.BatchNorm2d):
    """A BatchNorm2d subclass: it has its own forward, so conversion leaves it alone."""


def bn_with_state(features, **kwargs):
    bn = nn.BatchNorm2d(features, **kwargs)
    with torch.no_grad():
        if bn.affine:
            bn.weight.copy_(torch.linspace(0.5, 2.0, features))
            bn.bias.copy_(torch.linspace(-1.0, 1.0, features))
        if bn.track_running_stats:
            bn.running_mean.copy_(torch.linspace(-0.3, 0.7, features))
            bn.running_var.copy_(torch.linspace(1.5, 2.5, features))
            bn.num_batches_tracked.fill_(7)
    return bn


def test_conversion_replaces_every_batchnorm2d_with_its_settings_state_and_runner_attributes():
    first = bn_with_state(4, eps=1e-3, momentum=0.3)
    first.runner_zero_init = True  # runner_* attributes (set by the model builders) travel with the layer
    first.runner_role = "stem"
    first.unrelated = 1  # anything else does not
    second = bn_with_state(4, momentum=None, affine=False)
    third = bn_with_state(2, eps=0.02, track_running_stats=False)
    conv, relu, linear = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(2, 5)
    custom, bn1d = CustomBN(4), nn.BatchNorm1d(2)
    model = nn.Sequential(
        conv, first, relu, nn.Sequential(second, custom, nn.Sequential(third, bn1d)), linear
    )
    originals = [first, second, third]
    expected_state = [copy.deepcopy(bn.state_dict()) for bn in originals]

    assert convert_sync_batchnorm(model) is model

    converted = [model[1], model[3][0], model[3][2][0]]
    for new, old, state in zip(converted, originals, expected_state, strict=True):
        assert type(new) is GlobalBatchNorm2d
        assert (new.num_features, new.eps, new.momentum, new.affine, new.track_running_stats) == (
            old.num_features,
            old.eps,
            old.momentum,
            old.affine,
            old.track_running_stats,
        )
        assert new.state_dict().keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(new.state_dict()[key], value), key
    assert (converted[0].eps, converted[0].momentum) == (1e-3, 0.3)
    assert converted[1].momentum is None and not converted[1].affine
    assert (converted[2].eps, converted[2].track_running_stats) == (0.02, False)
    assert converted[0].runner_zero_init is True and converted[0].runner_role == "stem"
    assert not hasattr(converted[0], "unrelated")
    assert not any(k.startswith("runner_") for k in converted[1].__dict__)
    # everything that is not exactly a BatchNorm2d stays the very same object
    assert model[0] is conv and model[2] is relu and model[4] is linear
    assert model[3][1] is custom and model[3][2][1] is bn1d


def test_conversion_builds_the_new_layers_on_the_models_device():
    # meta is the device CPU-only tests have besides cpu: a layer built on cpu and not moved shows
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    convert_sync_batchnorm(model)
    assert type(model[1]) is GlobalBatchNorm2d
    assert {t.device.type for t in model[1].state_dict().values()} == {"meta"}


class ReportsCuda(nn.Sequential):
    """A model whose parameters say they are on a GPU: the CUDA branch without a GPU (conversion to
    nn.SyncBatchNorm only builds modules; it needs CUDA to run them, not to make them)."""

    def parameters(self, recurse=True):
        yield types.SimpleNamespace(device=torch.device("cuda"))


def test_on_cuda_the_conversion_is_torchs_syncbatchnorm():
    bn = bn_with_state(4, eps=1e-3)
    model = ReportsCuda(nn.Conv2d(3, 4, 3), bn)
    out = convert_sync_batchnorm(model)
    assert out is model
    assert type(model[1]) is nn.SyncBatchNorm
    assert model[1].eps == 1e-3 and torch.equal(model[1].running_var, bn.running_var)
