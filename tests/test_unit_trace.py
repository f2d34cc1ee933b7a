"""Unit discovery from a traced forward pass, on toy backbones whose right
answer is known: residual blocks in Sequential stages, a U-Net-like skip, a
two-branch output (DDRNet), a shared layer, a unit fed several tensors."""
import pytest
import torch
import torch.nn as nn

from mmman.local.partition import PartitionError, backbone_units
from mmman.local.unit_trace import TraceError, trace_units


class Res(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(self.conv1(x).relu())


def down(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), nn.BatchNorm2d(c_out))


class Stages(nn.Module):
    """stem -> [down, Res, Res] x 2; outputs of both stages."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.stage1 = nn.Sequential(down(4, 8), Res(8), Res(8))
        self.stage2 = nn.Sequential(down(8, 8), Res(8), Res(8))

    def forward(self, x):
        x = self.stem(x).relu()
        a = self.stage1(x)
        return a, self.stage2(a)


class Skip(Stages):
    """stage1's output is added back after stage2 (a U-Net-like skip)."""

    def forward(self, x):
        a = self.stage1(self.stem(x))
        b = self.stage2(a)
        return (b + a[..., ::2, ::2], )


class TwoBranch(Stages):
    """The output sums a branch that ends early and one that runs on."""

    def forward(self, x):
        a = self.stage1(self.stem(x))
        early = a[..., ::2, ::2]
        return (early + self.stage2(a), )


class Shared(Stages):
    """stage2's second block is called twice."""

    def forward(self, x):
        a = self.stage1(self.stem(x))
        b = self.stage2[0](a)
        b = self.stage2[1](b)
        return (self.stage2[1](b), )


class Pair(nn.Module):
    """A unit taking (pixel tokens of every patch, batch tokens): the first
    tensor is not batch major (TNT)."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.outer = nn.Linear(4, 4)

    def forward(self, inner, outer):
        inner = inner + self.inner(inner)
        return inner, outer + self.outer(inner.mean(1).view_as(outer))


class Tokens(nn.Module):

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 4, 8, 8)
        self.layers = nn.ModuleList(Pair() for _ in range(3))

    def forward(self, x):
        x = self.embed(x)  # (N, 4, h, w)
        n, c, h, w = x.shape
        outer = x.flatten(2).transpose(1, 2)  # (N, hw, 4)
        inner = outer.reshape(n * h * w, 1, c)  # (N*hw, 1, 4)
        for layer in self.layers:
            inner, outer = layer(inner, outer)
        return (outer, )


class InPlacePair(Pair):
    """TNT's layer: adds to its batch tokens in place."""

    def forward(self, inner, outer):
        inner = inner + self.inner(inner)
        outer[:, 1:] = outer[:, 1:] + self.outer(inner.mean(1)).view_as(
            outer)[:, 1:]
        return inner, outer


class InPlaceTokens(Tokens):

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(InPlacePair() for _ in range(3))


def _names(backbone):
    return [u.name for u in trace_units(backbone)[0]]


def test_stages_are_expanded_into_their_blocks():
    units, outputs, stem = trace_units(Stages())
    assert [u.name for u in units] == [
        'stage1.0', 'stage1.1', 'stage1.2', 'stage2.0', 'stage2.1',
        'stage2.2'
    ]
    assert stem == ['stem']
    assert outputs == [2, 5]  # each stage's last block
    assert units[0].in_shape[1] == 4 and units[0].out_shape[1] == 8
    assert not any(u.extra_inputs for u in units)


def test_no_cut_under_a_skip_connection():
    # a skip from stage1's output to the end: nothing after stage1 is a cut
    assert _names(Skip()) == ['stage1.0', 'stage1.1', 'stage1.2']


def test_an_output_never_straddles_a_cut():
    # the output mixes stage1's output and stage2's: no cut inside stage2
    assert _names(TwoBranch()) == ['stage1.0', 'stage1.1', 'stage1.2']


def test_a_layer_called_twice_is_no_unit():
    assert 'stage2.1' not in _names(Shared())


def test_the_feature_is_the_batch_major_tensor():
    units, _, _ = trace_units(Tokens())
    pairs = [u for u in units if u.name.startswith('layers.')]
    assert [u.name for u in pairs] == ['layers.0', 'layers.1', 'layers.2']
    for u in pairs:
        assert u.extra_inputs and u.in_index == 1 and u.out_index == 1
        assert u.in_shape[0] == 2 and u.in_shape[-1] == 4


def test_a_unit_writing_into_its_input_gets_eta_copies_on_copies():
    from mmman.local import MomentumAuxNet
    units, _, _ = trace_units(InPlaceTokens())
    assert [u.mutates_inputs for u in units if 'layers' in u.name] == [
        True, True, True]
    assert not any(u.mutates_inputs for u in trace_units(Tokens())[0])
    layer = InPlacePair()
    for clone in (False, True):
        eta = MomentumAuxNet(layer, 4, balance=dict(type='BranchBalance'),
                             out_index=1, recompute=True,
                             clone_inputs=clone)
        eta.reset(layer)
        inner = torch.randn(6, 1, 4)
        outer = torch.randn(2, 3, 4, requires_grad=True) * 1.0
        before = outer.detach().clone()
        out = eta(inner, outer)
        # with copies, the block's output reaches the real layer unchanged
        # (TNT's loss under MAN++ equalled E2E's only then); without, both
        # branches and the real layer write into it
        assert torch.equal(outer.detach(), before) == clone
    out.sum().backward()  # the clone=True eta: a graph autograd can run
    assert inner.grad is None and layer.outer.weight.grad is None


def test_trace_leaves_buffers_modes_and_rng_alone():
    model = Stages()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    trace_units(model)
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(torch.get_rng_state(), rng)


class Resizing(Stages):
    """Re-registers a buffer, not persistent, for each new input size (as
    SwinV2's attention does with its coordinate table)."""

    def __init__(self):
        super().__init__()
        self.register_buffer('table', torch.zeros(1))

    def forward(self, x):
        self.register_buffer('table', torch.zeros(x.shape[-1]),
                             persistent=False)
        return super().forward(x)


def test_trace_leaves_the_buffers_registered_as_they_were():
    model = Resizing()
    keys = set(model.state_dict())
    trace_units(model)
    assert set(model.state_dict()) == keys and model.table.shape == (1, )


def test_refusals_say_why():
    class Holder(nn.Module):

        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

    with pytest.raises(PartitionError, match='skip connection or a parallel'):
        backbone_units(Holder(nn.Sequential(nn.Conv2d(3, 4, 3))))

    class Broken(nn.Module):

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(5, 4, 3)

        def forward(self, x):
            raise RuntimeError('needs a mask')

    with pytest.raises(TraceError, match='does not run on a random image'):
        trace_units(Broken())
