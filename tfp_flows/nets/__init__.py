"""Keras 3 conditioner networks; masks are applied in the forward pass."""

from tfp_flows.nets.conv_coupling_net import ConvCouplingNet
from tfp_flows.nets.coupling_mlp import CouplingMLP
from tfp_flows.nets.made import MADE, made_degrees, made_masks

__all__ = ["MADE", "CouplingMLP", "made_degrees", "made_masks"]
__all__ += ["ConvCouplingNet"]
