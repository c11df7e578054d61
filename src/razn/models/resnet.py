"""The ResNet18 trunk the segmentation nets and the zoom policy are built on.

Written here rather than taken from torchvision because the project needs
two things torchvision's constructor does not give together: a width
multiplier (small CPU models) and a free choice of which stages stride and
which dilate (the paper's output stride 8). Layer names follow torchvision
(`conv1`, `bn1`, `layer1`..`layer4`), so ImageNet weights could be mapped in.
"""

from __future__ import annotations

from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet18's block)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride, dilation)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(cout, cout, 1, dilation)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Stem(nn.Module):
    """7x7 convolution, stride 2, then 3x3 max-pool, stride 2: input / 4."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


class ResNet18Trunk(nn.Module):
    """ResNet18 without its classifier: the stem and four stages of two blocks.

    Parameters
    ----------
    width : channels of the first stage (64 in ResNet18); stages have
        width, 2*width, 4*width, 8*width.
    strided : for each of the four stages, whether its first block
        downsamples by 2. ResNet18 is (False, True, True, True): output
        stride 32. A stage that does not stride dilates instead, by the
        stride it gave up, so the receptive field stays that of ResNet18.
    """

    def __init__(self, width: int = 64, strided=(False, True, True, True)):
        super().__init__()
        if strided[0]:
            raise ValueError("the first stage of ResNet18 never strides (the stem did)")
        self.stem = Stem(width)
        channels = [width, 2 * width, 4 * width, 8 * width]
        cin, dilation, stride_total = width, 1, 4
        for index, (cout, strides) in enumerate(zip(channels, strided, strict=True)):
            natural = index > 0  # ResNet18 strides in stages 2, 3 and 4
            stride = 2 if strides else 1
            first_dilation = dilation
            if natural and not strides:
                dilation *= 2  # gave up a stride: dilate from the next conv on
            elif strides and dilation > 1:
                dilation //= 2  # strides again after dilated stages
                first_dilation = dilation
            stride_total *= stride
            layer = nn.Sequential(
                BasicBlock(cin, cout, stride, first_dilation),
                BasicBlock(cout, cout, 1, dilation),
            )
            self.add_module(f"layer{index + 1}", layer)
            cin = cout
        self.out_channels = cin
        self.output_stride = stride_total

    def forward(self, x):
        x = self.stem(x)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
        return x
