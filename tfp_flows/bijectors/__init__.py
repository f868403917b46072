"""Bijectors that TFP lacks, one per module. Each is a `tfb.Bijector` subclass."""

from tfp_flows.bijectors.prelu import PReLU
from tfp_flows.bijectors.radial import Radial
from tfp_flows.bijectors.sos_polynomial import SOSAutoregressive, SOSPolynomial, sos_maf

__all__ = []
__all__ += ["PReLU", "Radial", "SOSPolynomial", "SOSAutoregressive", "sos_maf"]
