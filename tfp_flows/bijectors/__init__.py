"""Bijectors that TFP lacks, one per module. Each is a `tfb.Bijector` subclass."""

from tfp_flows.bijectors.actnorm import ActNorm, initialize_actnorms
from tfp_flows.bijectors.amortized_flow import AmortizedFlow
from tfp_flows.bijectors.batch_norm import BatchNorm, batch_norm_training
from tfp_flows.bijectors.bernstein import Bernstein
from tfp_flows.bijectors.bnaf import BNAF, num_bnaf_params
from tfp_flows.bijectors.bounded import Bounded
from tfp_flows.bijectors.box_preserving import BoxPreserving
from tfp_flows.bijectors.circular_spline import (
    CircularSpline,
    CircularSplineCouplingFn,
    torus_uniform,
)
from tfp_flows.bijectors.closed_form_log_prob_invert import ClosedFormLogProbInvert
from tfp_flows.bijectors.deep_sigmoidal import DeepSigmoidal
from tfp_flows.bijectors.factor_out import FactorOut
from tfp_flows.bijectors.fast_sampling_maf import FastSamplingMAF
from tfp_flows.bijectors.householder import Householder
from tfp_flows.bijectors.image_affine_coupling import (
    ImageAffineCoupling,
    channel_mask,
    checkerboard_mask,
)
from tfp_flows.bijectors.invertible_1x1_conv import Invertible1x1Conv
from tfp_flows.bijectors.invertible_dense import InvertibleDense
from tfp_flows.bijectors.logistic_mixture_cdf import (
    LogisticMixtureCDFTransformer,
    LogisticMixtureCouplingFn,
    logistic_mixture_coupling,
)
from tfp_flows.bijectors.mixture_cdf import MixtureCDF, MixtureCDFCouplingFn, cdf_flow_distribution
from tfp_flows.bijectors.nice_scaling import NICEScaling
from tfp_flows.bijectors.parameters import as_parameter, trainable_parameter
from tfp_flows.bijectors.planar import Planar
from tfp_flows.bijectors.prelu import PReLU
from tfp_flows.bijectors.radial import Radial
from tfp_flows.bijectors.residual import Residual, ResidualInverseError, ResidualInverseWarning
from tfp_flows.bijectors.sos_polynomial import SOSAutoregressive, SOSPolynomial, sos_maf
from tfp_flows.bijectors.squeeze import Squeeze
from tfp_flows.bijectors.standardize import (
    ConstantColumnWarning,
    StandardizationWarning,
    Standardize,
)
from tfp_flows.bijectors.sylvester import Sylvester
from tfp_flows.bijectors.umnn import UMNN, num_integrand_params

__all__ = []
__all__ += ["PReLU", "Radial", "SOSPolynomial", "SOSAutoregressive", "sos_maf"]
__all__ += ["Residual", "ResidualInverseWarning", "ResidualInverseError"]
__all__ += ["DeepSigmoidal"]
__all__ += ["ActNorm", "initialize_actnorms", "FactorOut", "ImageAffineCoupling", "channel_mask",
            "checkerboard_mask", "Invertible1x1Conv", "InvertibleDense", "NICEScaling", "Planar",
            "Squeeze", "Sylvester"]
__all__ += ["LogisticMixtureCDFTransformer", "LogisticMixtureCouplingFn",
            "logistic_mixture_coupling"]
__all__ += ["FastSamplingMAF"]
__all__ += ["MixtureCDF", "MixtureCDFCouplingFn", "cdf_flow_distribution",
            "ClosedFormLogProbInvert"]
__all__ += ["AmortizedFlow"]
__all__ += ["trainable_parameter", "as_parameter"]
__all__ += ["Standardize", "ConstantColumnWarning", "StandardizationWarning", "Bounded",
            "BoxPreserving"]
__all__ += ["Householder"]
__all__ += ["BatchNorm", "batch_norm_training"]
__all__ += ["BNAF", "num_bnaf_params"]
__all__ += ["CircularSpline", "CircularSplineCouplingFn", "torus_uniform"]
__all__ += ["UMNN", "num_integrand_params"]
__all__ += ["Bernstein"]
