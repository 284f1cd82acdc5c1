"""TinyConv: TensorFlow micro_speech's ``tiny_conv`` in PyTorch.

Input [N, 49, 40] float features (the dequantized int8 micro_speech features) ->
Conv2D(1 -> channels, 10x8, stride 2, "same") + ReLU -> dropout -> FC(25*20*channels -> classes).
With 8 channels and 4 classes: 648 + 16,004 = 16,652 parameters.

Two choices make the export to TFLite a plain weight copy:
- ZeroPad2d((3, 3, 4, 5)) reproduces Keras/TFLite "same" padding for a 10x8 kernel at stride 2
  on 49x40 (total padding 9 rows, 6 columns, the extra row at the bottom).
- The conv output is flattened in NHWC order (height, width, channel), TFLite's layout, so
  ``fc.weight`` columns line up with the FULLY_CONNECTED weights of the .tflite.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SHAPE = (49, 40)
CLASSES = ("silence", "unknown", "yes", "no")


class TinyConv(nn.Module):
    def __init__(self, channels: int = 8, num_classes: int = len(CLASSES), dropout: float = 0.5):
        super().__init__()
        self.channels = channels
        self.pad = nn.ZeroPad2d((3, 3, 4, 5))
        self.conv = nn.Conv2d(1, channels, kernel_size=(10, 8), stride=2)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.out_hw = (25, 20)
        self.fc = nn.Linear(self.out_hw[0] * self.out_hw[1] * channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)  # [N, 1, 49, 40]
        x = self.relu(self.conv(self.pad(x)))
        x = self.dropout(x)
        x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC flatten, as TFLite lays it out
        return self.fc(x)
