"""TensorLoader: permutations per epoch, seeding, distributed shards, resume, normalization."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from goalbrake.data import EpochPermutation, TensorLoader, epoch_seed


def make_loader(n=103, batch_size=10, **kwargs) -> TensorLoader:
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    return TensorLoader(images, torch.arange(n), batch_size=batch_size, **kwargs)


def epoch_labels(loader) -> torch.Tensor:
    return torch.cat([torch.empty(0, dtype=torch.long), *(y for _, y in loader)])


def test_each_epoch_is_a_permutation_of_the_split():
    loader = make_loader(shuffle=True)
    assert len(loader) == 11
    for _ in range(3):
        batches = list(loader)
        assert [len(y) for _, y in batches] == [10] * 10 + [3]
        seen = torch.cat([y for _, y in batches])
        assert torch.equal(seen.sort().values, torch.arange(103))
        # images and labels stay paired
        assert all(torch.equal(x.view(-1).long(), y) for x, y in batches)


def test_epochs_differ_and_seeded_runs_repeat():
    a, b = make_loader(shuffle=True, seed=5), make_loader(shuffle=True, seed=5)
    run_a = [epoch_labels(a) for _ in range(3)]
    run_b = [epoch_labels(b) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(run_a, run_b, strict=True))
    assert not torch.equal(run_a[0], run_a[1])
    assert not torch.equal(run_a[1], run_a[2])
    assert not torch.equal(run_a[0], epoch_labels(make_loader(shuffle=True, seed=6)))


def test_order_depends_only_on_seed_and_epoch():
    loader = make_loader(shuffle=True, seed=1)
    loader.set_epoch(7)
    seventh = epoch_labels(loader)
    expected = torch.randperm(103, generator=torch.Generator().manual_seed(epoch_seed(1, 7)))
    assert torch.equal(seventh, expected)
    assert torch.equal(loader.sampler.indices(7), expected)
    # the counter advanced by the iteration: the next epoch is 8
    assert torch.equal(epoch_labels(loader), loader.sampler.indices(8))


def test_seeds_do_not_alias_across_epochs():
    # DistributedSampler seeds with seed + epoch: (0, 1) and (1, 0) give the same order.
    assert epoch_seed(0, 1) != epoch_seed(1, 0)
    a = EpochPermutation(50, shuffle=True, seed=0).indices(1)
    b = EpochPermutation(50, shuffle=True, seed=1).indices(0)
    assert not torch.equal(a, b)


def test_iteration_draws_the_order_lazily_after_set_epoch():
    # Lightning calls iter() before set_epoch(); the order must be the set epoch's.
    loader = make_loader(shuffle=True)
    iterator = iter(loader)
    loader.set_epoch(4)
    assert torch.equal(torch.cat([y for _, y in iterator]), loader.sampler.indices(4))


def test_evaluation_order_is_fixed():
    loader = make_loader(shuffle=False, batch_size=25)
    assert torch.equal(epoch_labels(loader), torch.arange(103))
    assert torch.equal(epoch_labels(loader), torch.arange(103))


def test_drop_last_drops_the_incomplete_batch():
    loader = make_loader(shuffle=True, drop_last=True)
    assert len(loader) == 10
    seen = epoch_labels(loader)
    assert seen.numel() == 100
    assert seen.unique().numel() == 100


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 150),
    world_size=st.integers(1, 5),
    batch_size=st.integers(1, 16),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_distributed_shards_are_disjoint_equal_and_cover(
    n, world_size, batch_size, drop_last, shuffle, epoch
):
    ranks = [
        make_loader(
            n,
            batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            rank=r,
            world_size=world_size,
            seed=3,
        )
        for r in range(world_size)
    ]
    for loader in ranks:
        loader.set_epoch(epoch)
    shards = [epoch_labels(loader) for loader in ranks]
    # every rank has the same number of batches (collectives stay in step)
    assert len({len(loader) for loader in ranks}) == 1
    assert all(len([*loader]) == len(loader) for loader in ranks)
    everything = torch.cat(shards)
    if drop_last:
        per_rank = (n // world_size) // batch_size * batch_size
        assert all(s.numel() == per_rank for s in shards)
        assert everything.unique().numel() == everything.numel()  # disjoint
    else:
        per_rank = math.ceil(n / world_size)
        assert all(s.numel() == per_rank for s in shards)
        assert set(everything.tolist()) == set(range(n))  # covers the split
        # only the padding repeats: at most world_size − 1 extra, unless n < world_size
        assert everything.numel() - n == per_rank * world_size - n
        if n >= world_size:
            assert everything.unique().numel() == n


def test_shards_follow_distributed_sampler_positions():
    # rank r takes positions r, r + W, ... of the (padded) epoch order
    order = EpochPermutation(10, shuffle=True, seed=2).indices(0)
    shards = [
        EpochPermutation(10, shuffle=True, seed=2, rank=r, world_size=4).indices(0)
        for r in range(4)
    ]
    padded = torch.cat([order, order[:2]])
    assert all(torch.equal(shards[r], padded[r::4]) for r in range(4))


def test_resume_mid_epoch_continues_with_the_remaining_batches():
    reference = make_loader(shuffle=True, seed=9)
    reference.set_epoch(2)
    full = [y for _, y in reference]

    first = make_loader(shuffle=True, seed=9)
    first.set_epoch(2)
    iterator = iter(first)
    head = [next(iterator)[1] for _ in range(4)]
    state = first.state_dict()
    assert state == {"epoch": 2, "batches": 4}

    resumed = make_loader(shuffle=True, seed=9)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # Lightning sets the epoch again on restart
    tail = [y for _, y in resumed]
    assert all(torch.equal(a, b) for a, b in zip(head + tail, full, strict=True))
    # the epoch after continues normally
    assert torch.equal(epoch_labels(resumed), resumed.sampler.indices(3))


def test_a_peek_before_the_resumed_iteration_does_not_use_up_the_state():
    first = make_loader(shuffle=True)
    iterator = iter(first)
    head = [next(iterator)[1] for _ in range(3)]
    resumed = make_loader(shuffle=True)
    resumed.load_state_dict(first.state_dict())
    peek = list(itertools.islice(resumed, 2))  # e.g. a callback measuring two batches first
    assert torch.equal(peek[0][1], resumed.sampler.indices(0)[30:40])
    resumed.set_epoch(0)
    tail = [y for _, y in resumed]
    assert torch.equal(torch.cat(head + tail), resumed.sampler.indices(0))
    resumed.set_epoch(0)  # after a complete iteration the state is spent
    assert torch.equal(epoch_labels(resumed), resumed.sampler.indices(0))


def test_resume_from_a_finished_epoch_starts_the_next():
    loader = make_loader(shuffle=True)
    list(loader)
    resumed = make_loader(shuffle=True)
    resumed.load_state_dict(loader.state_dict())
    assert torch.equal(epoch_labels(resumed), resumed.sampler.indices(1))


def test_uint8_images_are_scaled_and_normalized_per_channel():
    images = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    loader = TensorLoader(
        images, torch.zeros(20, dtype=torch.long), batch_size=20, mean=mean, std=std
    )
    ((x, _),) = list(loader)
    expected = (images.double() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std
    ).view(1, 3, 1, 1)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.double(), expected, rtol=0, atol=1e-5)


def test_uint8_without_statistics_is_scaled_to_unit_range():
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    ((x, _),) = list(TensorLoader(images, torch.zeros(2, dtype=torch.long), batch_size=2))
    assert x.view(-1).tolist() == [0.0, 1.0]


def test_batches_live_on_the_data_device():
    loader = make_loader()
    x, y = next(iter(loader))
    assert x.device == y.device == loader.device == torch.device("cpu")


def test_looks_like_a_sampler_holder_to_lightning():
    loader = make_loader(shuffle=True)
    assert loader.batch_sampler is None
    assert callable(loader.sampler.set_epoch)
    assert len(loader.sampler) == 103
    assert sorted(loader.sampler) == list(range(103))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "Invalid batch_size value: 0 (must be an integer >= 1)"),
        ({"world_size": 0}, "Invalid world_size value: 0 (must be an integer >= 1)"),
        ({"rank": 2, "world_size": 2}, "Invalid rank value: 2 (must be in 0..1)"),
        ({"mean": (0.1, 0.2)}, "Invalid mean value: [0.1, 0.2] (must have 1 entries)"),
        ({"std": (0.0,)}, "Invalid std value: [0.0] (must be > 0)"),
    ],
)
def test_invalid_arguments(kwargs, message):
    kwargs = {"batch_size": 4, **kwargs}
    with pytest.raises(ValueError) as info:
        TensorLoader(torch.zeros(8, 1, 2, 2), torch.zeros(8, dtype=torch.long), **kwargs)
    assert str(info.value) == message


def test_mismatched_tensors():
    with pytest.raises(ValueError, match=r"Invalid labels shape: \(7,\) \(must be \(8,\)\)"):
        TensorLoader(torch.zeros(8, 1, 2, 2), torch.zeros(7), batch_size=2)
    with pytest.raises(ValueError, match=r"Invalid images shape: \(8, 2, 2\)"):
        TensorLoader(torch.zeros(8, 2, 2), torch.zeros(8), batch_size=2)
