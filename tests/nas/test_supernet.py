"""The weight-sharing supernet: slicing is exact (a sliced sub-network computes what a
stand-alone model with the copied weights computes), channel sorting keeps the function of the
widest sub-network, the sandwich/uniform sampling is a pure function of seed and step, and an
interrupted training resumes bit-identically."""
import dataclasses

import numpy as np
import pytest
import torch

from nas.supernet import SUPERNET_SPACES, Supernet, extract_subnet, extreme_indices, make_supernet
from nas.supernet_train import SupernetConfig, SupernetTrainer
from search_spaces.registry import make_space
from search_spaces.rewrite import widened
from training.checkpoint import load_checkpoint
from training.datasets import load_dataset


def random_statistics(net: torch.nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics and affine weights, so a wrong slice shows."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(n, generator=generator))
            module.bias.data.copy_(torch.randn(n, generator=generator))


@pytest.fixture(scope="module", params=SUPERNET_SPACES)
def supernet(request) -> Supernet:
    torch.manual_seed(0)
    net = make_supernet(request.param, resolution=16, num_classes=10, in_channels=1)
    random_statistics(net, 1)
    return net.eval()


def sampled(net: Supernet, n: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    picks = [net.space.sample_indices(rng) for _ in range(n)]
    return [extreme_indices(net.space, True), extreme_indices(net.space, False), *picks]


def test_a_sliced_subnet_computes_what_the_standalone_model_with_copied_weights_computes(supernet):
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for indices in sampled(supernet, 6, seed=3):
            spec = supernet.space.decode(indices)
            standalone = extract_subnet(supernet, spec).eval()
            assert standalone.spec == spec
            torch.testing.assert_close(supernet(x, supernet.layout(indices)), standalone(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("multiplier", [1.1, 1.3, 3.0])
def test_a_widened_subnet_within_the_supernets_widths_slices_exactly(supernet, multiplier):
    """Widths between the space's choices (or capped at the supernet's) slice like any other:
    the stand-alone model computes what the supernet computes with the widened layout."""
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    changed = 0
    with torch.no_grad():
        for indices in sampled(supernet, 4, seed=5)[1:]:
            template = supernet.space.decode(indices)
            spec = widened(template, multiplier, supernet.width_ceilings(template))
            changed += spec != template
            layout = supernet.widened_layout(spec, template)
            standalone = extract_subnet(supernet, spec, layout).eval()
            torch.testing.assert_close(supernet(x, layout), standalone(x), rtol=1e-5, atol=1e-6)
    assert changed >= 3


def test_a_widened_spec_wider_than_the_supernet_or_restructured_is_refused(supernet):
    template = supernet.space.decode(extreme_indices(supernet.space, True))
    with pytest.raises(ValueError, match="wider than the supernet holds"):
        supernet.widened_layout(widened(template, 1.5), template)
    with pytest.raises(ValueError, match="not a re-width of its template"):
        supernet.widened_layout(template.replace_block(0, kernel=3 if template.blocks[0].kernel == 5 else 5), template)


def test_layout_of_a_spec_equals_the_layout_of_its_indices(supernet):
    for indices in sampled(supernet, 5, seed=4):
        assert supernet.layout_of(supernet.space.decode(indices)) == supernet.layout(indices)


def test_a_spec_outside_the_space_is_refused_with_a_value_error(supernet):
    spec = supernet.space.decode(extreme_indices(supernet.space, True)).replace(num_classes=7)
    with pytest.raises(ValueError, match="not in this space"):
        supernet.layout_of(spec)


def test_unknown_space_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"'mobilenet' has no supernet; expected one of \['mnasnet-mbconv', 'mnasnet-small-mbconv', 'mnasnet-v3small-mbconv'\]"):
        make_supernet("mobilenet", resolution=16, num_classes=10, in_channels=1)


def test_a_full_mnasnet_space_is_refused_naming_its_mbconv_part():
    with pytest.raises(ValueError, match=r"'mnasnet-small' has no supernet; its MBConv part is mnasnet-small-mbconv"):
        make_supernet("mnasnet-small", resolution=16, num_classes=10, in_channels=1)


def test_a_block_without_an_expansion_conv_is_refused_by_the_supernet(supernet):
    full = make_space("mnasnet", resolution=16, num_classes=10, in_channels=1)
    dsconv = full.decode(tuple(1 if i % 7 == 0 else 0 for i in range(len(full.cardinalities))))
    with pytest.raises(ValueError, match="not in this space|not an MBConv"):
        supernet.layout_of(dsconv)


def test_sorting_channels_keeps_the_widest_subnet_and_orders_importance():
    torch.manual_seed(0)
    net = make_supernet("mnasnet-mbconv", resolution=16, num_classes=10, in_channels=1)
    random_statistics(net, 5)
    net.eval()
    x = torch.randn(2, 1, 16, 16)
    layout = net.layout(extreme_indices(net.space, True))
    with torch.no_grad():
        before = net(x, layout)
        net.sort_channels()
        after = net(x, layout)
    torch.testing.assert_close(before, after, rtol=1e-4, atol=1e-5)
    importance = net.stages[3][0].mbconv.conv_pwl.conv.weight.abs().sum(dim=(0, 2, 3))
    assert bool((importance[:-1] >= importance[1:]).all())


def test_kernel_three_is_the_centre_of_the_stored_five_by_five():
    space = make_space("mnasnet-mbconv", resolution=16, num_classes=10, in_channels=1)
    net = Supernet(space)
    small = extreme_indices(space, False)  # every kernel 3x3, MBConv3
    model = extract_subnet(net, space.decode(small))
    stored = net.stages[0][0].mbconv.conv_dw.conv.weight
    assert stored.shape[-1] == 5
    torch.testing.assert_close(model.blocks[0].conv_dw.conv.weight, stored[:48, :, 1:4, 1:4])


@pytest.fixture(scope="module")
def tiny_data():
    """16 training and 20 validation images: 2 steps per epoch at batch 8."""
    data = load_dataset("digits", resolution=16).train_subset(16, 0)
    return dataclasses.replace(data, x_val=data.x_val[:20], y_val=data.y_val[:20])


def tiny_config(**changes) -> SupernetConfig:
    base = dict(epochs=2, batch_size=8, subnets_per_step=3, calibration_images=8, device="cpu", seed=3)
    return SupernetConfig(**{**base, **changes})


def test_sampled_subnets_are_a_function_of_seed_and_step(tiny_data):
    trainer = SupernetTrainer(tiny_config(), tiny_data)
    trainer._setup(torch.device("cpu"))
    first = trainer.sample_layouts(5)
    assert trainer.sample_layouts(5) == first and trainer.sample_layouts(6) != first
    assert first[0] == trainer.largest and first[1] == trainer.smallest and len(first) == 3
    uniform = SupernetTrainer(tiny_config(rule="uniform"), tiny_data)
    uniform._setup(torch.device("cpu"))
    assert len(uniform.sample_layouts(5)) == 1 and uniform.sample_layouts(5) == uniform.sample_layouts(5)


def test_sampled_subnets_start_at_the_ends_and_spread_over_the_space(tiny_data):
    """The sandwich's random sub-networks: at step 0 each is its end (largest for the first,
    smallest for the second); after the spread fraction of the steps they are uniform draws."""
    trainer = SupernetTrainer(tiny_config(subnets_per_step=4, spread=0.5, epochs=20), tiny_data)
    trainer._setup(torch.device("cpu"))
    assert trainer.sample_layouts(0)[2:] == [trainer.largest, trainer.smallest]
    late = [layout for step in range(30, 40) for layout in trainer.sample_layouts(step)[2:]]
    assert all(layout not in (trainer.largest, trainer.smallest) for layout in late)


class Crash(Exception):
    """Stands in for SIGKILL: nothing after it runs."""


def test_training_resumed_after_a_stop_or_a_kill_continues_bit_identically(tmp_path, tiny_data):
    config = tiny_config()
    reference = SupernetTrainer(config, tiny_data)
    assert reference.fit()
    # a stop between steps in epoch 2 (Ctrl-C): the checkpoint holds the step
    stops = iter([False, False, True])
    stopped = SupernetTrainer(config, tiny_data, checkpoint_path=tmp_path / "a.pt", should_stop=lambda: next(stops, False))
    assert not stopped.fit()
    resumed = SupernetTrainer(config, tiny_data, checkpoint_path=tmp_path / "a.pt")
    assert resumed.fit(load_checkpoint(tmp_path / "a.pt"))
    # a kill right after the epoch-1 checkpoint was written
    killed = SupernetTrainer(config, tiny_data, checkpoint_path=tmp_path / "b.pt",
                             on_epoch=lambda row: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        killed.fit()
    again = SupernetTrainer(config, tiny_data, checkpoint_path=tmp_path / "b.pt")
    assert again.fit(load_checkpoint(tmp_path / "b.pt"))
    untimed = lambda rows: [{k: v for k, v in row.items() if not k.endswith("_s")} for row in rows]  # noqa: E731
    for other in (resumed, again):
        assert untimed(other.rows) == untimed(reference.rows)
        for (name, a), b in zip(reference.net.state_dict().items(), other.net.state_dict().values()):
            assert torch.equal(a, b), name


def test_resume_with_other_settings_is_refused(tmp_path, tiny_data):
    stops = iter([True])
    trainer = SupernetTrainer(tiny_config(), tiny_data, checkpoint_path=tmp_path / "c.pt", should_stop=lambda: next(stops, False))
    assert not trainer.fit()
    with pytest.raises(ValueError, match=r"other supernet settings \(fields \['lr'\]\)"):
        SupernetTrainer(tiny_config(lr=0.2), tiny_data).fit(load_checkpoint(tmp_path / "c.pt"))


@pytest.mark.parametrize("changes, message", [
    ({"space": "darts"}, "--space 'darts' has no supernet"),
    ({"rule": "greedy"}, "--rule 'greedy' is not known"),
    ({"epochs": 0}, "--epochs = 0"),
    ({"subnets_per_step": 1}, "--subnets-per-step = 1"),
    ({"spread": 1.5}, "--spread = 1.5"),
    ({"lr": -1.0}, "--lr = -1.0"),
    ({"device": "tpu"}, "--device 'tpu'"),
])
def test_bad_settings_name_the_value(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        SupernetConfig(**changes)


def test_recalibration_of_a_slice_equals_recalibrating_the_standalone_model():
    from nas.supernet_eval import recalibrate
    from training.inference import recalibrate_batchnorm

    torch.manual_seed(0)
    net = make_supernet("mnasnet-mbconv", resolution=16, num_classes=10, in_channels=1)
    x = torch.randn(32, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    for indices in sampled(net, 1, seed=5):
        spec = net.space.decode(indices)
        recalibrate(net, net.layout(indices), x, batch_size=32)
        sliced = extract_subnet(net, spec).state_dict()
        standalone = extract_subnet(net, spec)
        recalibrate_batchnorm(standalone, x, batch_size=32, batches=1, generator=torch.Generator().manual_seed(0),
                              device=torch.device("cpu"))
        for name, value in standalone.state_dict().items():
            if "running" in name:
                torch.testing.assert_close(sliced[name], value, rtol=1e-4, atol=1e-4)


def test_a_deeper_subnet_starts_as_its_shallower_one():
    """BigNAS's initialization (section 3.2): at initialization every block that is residual in
    the largest sub-network adds zero, so the largest (+1 layer per stage) computes what the same
    sub-network with -1 layer per stage computes. Without it the largest sub-network stays at
    chance on mnist-rot-back-image."""
    torch.manual_seed(0)
    net = make_supernet("mnasnet-mbconv", resolution=16, num_classes=10, in_channels=1).train()
    deep = extreme_indices(net.space, True)
    shallow = net.space.canonicalize(tuple(0 if i % 7 == 5 else v for i, v in enumerate(deep)))
    assert len(net.space.decode(shallow).blocks) < len(net.space.decode(deep).blocks)
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    outputs = []
    for indices in (deep, shallow):
        torch.manual_seed(2)  # the same dropout mask in the head
        outputs.append(net(x, net.layout(indices)))
    torch.testing.assert_close(outputs[0], outputs[1])
