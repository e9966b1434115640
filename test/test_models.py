"""The networks: published sizes, shapes, training, the semi-joint ablations, encoder freezing,
torchvision backbone loading and ONNX export (checked against ONNX Runtime).

Inputs are 64x64 and widths small where only structure matters, so the file runs in seconds.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812  (the universal torch idiom)

from lowlight_perception.models import (
    MODEL_NAMES,
    LowlightModel,
    build_model,
    count_parameters,
    list_models,
    summary,
)
from lowlight_perception.models.deeplab_joint import ResNet50
from lowlight_perception.models.lisu_decomp import LisuDecomp
from lowlight_perception.models.lisu_joint import LisuJoint, LisuSeg
from lowlight_perception.models.pipeline import OUTPUT_KEYS

SMALL = {"width": 0.125}  # LISU structure at a fraction of the cost
SEG_ONLY = {"lisu-seg", "dlv3p"}
DEEPLAB = {"dlv3p", "dlv3p-joint", "dlv3p-semi"}


def _rgb(batch: int = 1, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


class _Tuple(torch.nn.Module):
    """The model's non-None outputs as a tuple, in OUTPUT_KEYS order (for ONNX export)."""

    def __init__(self, model: LowlightModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(rgb)
        return tuple(out[k] for k in OUTPUT_KEYS if out[k] is not None)


# ---------------------------------------------------------------- sizes


def test_published_parameter_counts() -> None:
    # Measured: LisuDecomp 481,796; LisuJoint 10,446,193 (the published code has 10,450,001:
    # it keeps conv biases in front of BatchNorm, which we drop).
    assert abs(count_parameters(LisuDecomp()) - 0.48e6) / 0.48e6 < 0.02
    assert abs(count_parameters(LisuJoint()) - 10.45e6) / 10.45e6 < 0.02


def test_small_variants_fit_their_budgets() -> None:
    small = count_parameters(build_model("lisu-small"))
    tiny = count_parameters(build_model("lisu-tiny"))
    assert 0.5e6 <= small <= 1e6
    assert tiny < small


def test_summary_lists_submodules_and_total() -> None:
    model = build_model("lisu-tiny")
    text = summary(model)
    assert "decomp" in text and "net.encoder" in text
    assert f"{count_parameters(model):,}" in text


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_builds_and_runs(name: str) -> None:
    config = {"depth_head": True} if name in ("dlv3p", "lisu-seg") else {}
    model = build_model(name, **config).eval()
    assert model.name == name
    assert model.uses_decomposition == (name not in SEG_ONLY)
    json.dumps(model.config)  # a checkpoint can store it
    assert count_parameters(build_model(name, **model.config)) == count_parameters(model)
    with torch.no_grad():
        out = model(_rgb(h=64, w=96))
    assert set(out) == set(OUTPUT_KEYS)
    assert out["logits"].shape == (1, 14, 64, 96)
    if name in SEG_ONLY:
        assert out["reflectance"] is None and out["illumination"] is None
        assert out["reflectance_decomp"] is None
        assert out["depth"].shape == (1, 1, 64, 96) and out["depth"].min() > 0
    else:
        assert out["reflectance"].shape == (1, 3, 64, 96)
        assert out["reflectance_decomp"].shape == (1, 3, 64, 96)
        assert out["illumination"].shape == (1, 1, 64, 96)
        for key in ("reflectance", "reflectance_decomp", "illumination"):
            assert 0 <= out[key].min() and out[key].max() <= 1
        assert out["depth"] is None


def test_list_models_and_unknown_name() -> None:
    assert list_models() == list(MODEL_NAMES)
    assert {"lisu", "lisu-seg", "lisu-semi", "dlv3p", "dlv3p-joint", "dlv3p-semi"} <= set(
        MODEL_NAMES
    )
    with pytest.raises(KeyError) as err:
        build_model("unet")
    assert all(name in str(err.value) for name in MODEL_NAMES)


def test_unknown_config_key_names_key_and_valid_keys() -> None:
    with pytest.raises(TypeError, match=r"backbone_weights.*valid: num_classes, width"):
        build_model("lisu-tiny", backbone_weights="x.pth")
    with pytest.raises(TypeError, match=r"widht.*valid:"):
        build_model("lisu", widht=0.5)
    with pytest.raises(TypeError, match=r"width.*valid: num_classes, depth_head, backbone_w"):
        build_model("dlv3p", width=0.5)
    with pytest.raises(ValueError, match="width must be positive"):
        build_model("lisu", width=0)


def test_num_classes_and_width_reach_the_network() -> None:
    model = build_model("lisu", num_classes=5, width=0.125).eval()
    with torch.no_grad():
        assert model(_rgb())["logits"].shape[1] == 5
    assert model.config == {"num_classes": 5, "width": 0.125, "depth_head": False}


@pytest.mark.parametrize("name", ["lisu-tiny", "lisu-seg"])
def test_lisu_rejects_sizes_not_multiple_of_16(name: str) -> None:
    model = build_model(name, **SMALL).eval()
    with pytest.raises(ValueError, match=r"72x64 \(WxH\) is not a multiple of 16"):
        model(_rgb(h=64, w=72))


def test_lisu_joint_direct_contract() -> None:
    net = LisuJoint(width=0.125, depth_head=True).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 4, 32, 48))
    assert out["logits"].shape == (2, 14, 32, 48)
    assert out["reflectance"].shape == (2, 3, 32, 48)
    assert out["depth"].shape == (2, 1, 32, 48)
    with pytest.raises(ValueError, match="cross"):
        LisuJoint(cross="half")
    seg = LisuSeg(width=0.125).eval()
    with torch.no_grad():
        assert seg(torch.rand(1, 3, 32, 32))["reflectance"] is None


# ---------------------------------------------------------------- training


def _loss(model: LowlightModel, rgb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    out = model(rgb)
    loss = F.cross_entropy(out["logits"], labels)
    if out["reflectance"] is not None:
        loss = loss + F.mse_loss(out["reflectance"], rgb)
        loss = loss + (out["reflectance_decomp"] * out["illumination"] - rgb).abs().mean()
    if out["depth"] is not None:
        loss = loss + (out["depth"] - 2.0).abs().mean()
    return loss


@pytest.mark.parametrize(
    ("name", "config", "lr"),
    [
        ("lisu-tiny", {"depth_head": True}, 1e-3),  # the paper's Adam settings
        ("lisu-seg", SMALL, 1e-3),
        ("dlv3p-joint", {}, 1e-4),  # 40 M parameters: 1e-3 overshoots in one step
    ],
)
def test_one_optimizer_step_decreases_the_loss(name: str, config: dict, lr: float) -> None:
    torch.manual_seed(0)
    model = build_model(name, **config).train()
    rgb, labels = _rgb(batch=2), torch.randint(0, 14, (2, 64, 64))
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.95, 0.999))
    torch.manual_seed(1)  # same dropout masks in both forward passes
    before = _loss(model, rgb, labels)
    opt.zero_grad()
    before.backward()
    opt.step()
    torch.manual_seed(1)
    with torch.no_grad():
        after = _loss(model, rgb, labels)
    assert after < before


def test_task_loss_does_not_train_the_decomposition() -> None:
    model = build_model("lisu-tiny").train()
    out = model(_rgb(batch=2))
    F.cross_entropy(out["logits"], torch.randint(0, 14, (2, 64, 64))).backward()
    assert all(p.grad is None for p in model.decomp_parameters())
    assert any(p.grad is not None for p in model.task_parameters())
    n_decomp = sum(p.numel() for p in model.decomp_parameters())
    n_task = sum(p.numel() for p in model.task_parameters())
    assert n_decomp + n_task == count_parameters(model)
    assert list(build_model("lisu-seg", **SMALL).decomp_parameters()) == []


def test_freeze_encoders_trains_only_decoders() -> None:
    torch.manual_seed(0)
    model = build_model("lisu-tiny")
    model.freeze_encoders()
    model.train()
    encoders = [*model.decomp.encoder_modules(), model.net.encoder]
    frozen = {id(p) for m in encoders for p in m.parameters()}
    assert frozen and all(not p.requires_grad for m in encoders for p in m.parameters())
    for name, p in model.named_parameters():
        if id(p) not in frozen:
            assert p.requires_grad, name
    assert not model.net.encoder.training and model.net.segmentation.training
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    _loss(model, _rgb(batch=2), torch.randint(0, 14, (2, 64, 64))).backward()
    opt.step()
    state = model.state_dict()
    for key in snapshot:  # weights and BatchNorm statistics of encoders stay put
        if key.startswith(("net.encoder.", "decomp.conv")):
            assert torch.equal(state[key], snapshot[key]), key
    assert not torch.equal(
        state["net.segmentation.ups.0.conv.0.weight"],
        snapshot["net.segmentation.ups.0.conv.0.weight"],
    )
    assert not torch.equal(state["decomp.fuse1.weight"], snapshot["decomp.fuse1.weight"])
    assert f"{count_parameters(model, trainable_only=True):,}" in summary(model)


def test_freeze_encoders_deeplab_freezes_backbone_and_aspp() -> None:
    model = build_model("dlv3p")
    model.freeze_encoders()
    model.train()
    for module in (model.net.backbone, model.net.aspp):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    for module in (model.net.segmentation, model.net.segmentation_head):
        assert module.training
        assert all(p.requires_grad for p in module.parameters())


# ---------------------------------------------------------------- semi-joint ablations


def _perturb(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


@pytest.mark.parametrize("name", ["lisu", "lisu-semi"])
def test_lisu_semi_cuts_segmentation_to_restoration(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, **SMALL).eval()
    c4 = model.net.encoder.stages[3][0].out_channels
    restoration_in = model.net.restoration.ups[1].conv[0].in_channels
    assert restoration_in == (2 if name == "lisu-semi" else 3) * c4
    assert model.net.segmentation.ups[1].conv[0].in_channels == 3 * c4  # always receives
    rgb = _rgb()
    with torch.no_grad():
        before = model(rgb)
        _perturb(model.net.segmentation)
        after = model(rgb)
    same = torch.equal(before["reflectance"], after["reflectance"])
    assert same == (name == "lisu-semi")
    assert not torch.equal(before["logits"], after["logits"])


@pytest.fixture(scope="module")
def deeplab_joint() -> LowlightModel:
    torch.manual_seed(0)
    return build_model("dlv3p-joint").eval()


@pytest.mark.parametrize("name", ["dlv3p-joint", "dlv3p-semi"])
def test_dlv3p_semi_cuts_restoration_to_segmentation(name: str, deeplab_joint) -> None:
    model = deeplab_joint if name == "dlv3p-joint" else build_model(name).eval()
    expected = 512 if name == "dlv3p-joint" else 256
    assert model.net.segmentation.conv2[0].in_channels == expected
    assert model.net.restoration.conv2[0].in_channels == 512  # always receives
    rgb = _rgb()
    with torch.no_grad():
        before = model(rgb)
        saved = {k: v.clone() for k, v in model.net.restoration.state_dict().items()}
        _perturb(model.net.restoration)
        after = model(rgb)
        model.net.restoration.load_state_dict(saved)  # the fixture is shared
    assert torch.equal(before["logits"], after["logits"]) == (name == "dlv3p-semi")
    assert not torch.equal(before["reflectance"], after["reflectance"])


# ---------------------------------------------------------------- DeepLab backbone


def test_resnet50_matches_torchvision_layout() -> None:
    backbone = ResNet50()
    keys = list(backbone.state_dict())
    assert len(keys) == 318  # torchvision resnet50: 320 entries, minus fc.weight and fc.bias
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.downsample.0.weight",
        "layer3.5.conv2.weight",
        "layer4.2.bn3.num_batches_tracked",
    ):
        assert key in keys
    assert backbone.layer4[0].conv2.stride == (1, 1)
    assert [b.conv2.dilation for b in backbone.layer4] == [(1, 1), (2, 2), (2, 2)]
    with torch.no_grad():
        low, high = backbone.eval()(torch.rand(1, 3, 64, 64))
    assert low.shape == (1, 256, 16, 16) and high.shape == (1, 2048, 4, 4)  # strides 4 and 16


def test_backbone_weights_load_with_rgb_mean_illumination_channel(tmp_path) -> None:
    torch.manual_seed(0)
    source = ResNet50(in_channels=3)
    with torch.no_grad():
        for m in source.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    state = source.state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)

    joint = build_model("dlv3p-joint", backbone_weights=str(path))
    loaded = joint.net.backbone.state_dict()
    stem = state["conv1.weight"]
    assert loaded["conv1.weight"].shape == (64, 4, 7, 7)
    assert torch.allclose(loaded["conv1.weight"][:, 0], stem.mean(dim=1))  # illumination
    assert torch.equal(loaded["conv1.weight"][:, 1:], stem)  # reflectance RGB
    for key, value in loaded.items():
        if key != "conv1.weight":
            assert torch.equal(value, state[key]), key
    assert "backbone_weights" not in joint.config

    plain = build_model("dlv3p", backbone_weights=path)
    assert torch.equal(plain.net.backbone.state_dict()["conv1.weight"], stem)


def test_missing_backbone_weights_file_is_named(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "resnet50.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        build_model("dlv3p-semi", backbone_weights=str(missing))


# ---------------------------------------------------------------- ONNX


def _export(model: LowlightModel, rgb: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(
        _Tuple(model),
        (rgb,),
        buffer,
        opset_version=17,
        dynamo=False,
        input_names=["rgb"],
        output_names=[k for k, v in model(rgb).items() if v is not None],
    )
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n not in DEEPLAB] + ["dlv3p-joint"])
def test_exports_to_onnx_and_onnxruntime_matches(name: str, deeplab_joint) -> None:
    import onnxruntime as ort

    if name == "dlv3p-joint":
        model = deeplab_joint
    else:
        config = {} if name in ("lisu-small", "lisu-tiny") else SMALL
        torch.manual_seed(0)
        model = build_model(name, **config).eval()
    rgb = _rgb(h=64, w=96)
    with torch.no_grad():
        expected = model(rgb)
        graph = _export(model, rgb)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"rgb": rgb.numpy()}), strict=True))
    assert set(got) == {k for k, v in expected.items() if v is not None}
    for key, value in got.items():
        np.testing.assert_allclose(value, expected[key].numpy(), atol=1e-4, err_msg=key)
