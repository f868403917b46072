"""Keras 3 conditioner networks; masks are applied in the forward pass."""

from tfp_flows.nets.amortized_flow_params import AmortizedFlowParameters
from tfp_flows.nets.conv_coupling_net import ConvCouplingNet
from tfp_flows.nets.coupling_mlp import CouplingMLP
from tfp_flows.nets.lipschitz_mlp import LipschitzMLP
from tfp_flows.nets.made import MADE, made_degrees, made_masks
from tfp_flows.nets.ode_dynamics import ODEDynamics
from tfp_flows.nets.pixelcnn import MaskedConv2D, PixelCNN, pixelcnn_mask
from tfp_flows.nets.spline_coupling_mlp import SplineCouplingMLP
from tfp_flows.nets.wavenet import CausalConv1D, WaveNet

__all__ = ["MADE", "CouplingMLP", "made_degrees", "made_masks"]
__all__ += ["PixelCNN", "MaskedConv2D", "pixelcnn_mask"]
__all__ += ["WaveNet", "CausalConv1D"]
__all__ += ["ConvCouplingNet"]
__all__ += ["LipschitzMLP"]
__all__ += ["SplineCouplingMLP"]
__all__ += ["ODEDynamics"]
__all__ += ["AmortizedFlowParameters"]
