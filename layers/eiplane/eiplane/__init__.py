"""eiplane: a serverless control plane for accelerated PyTorch inference fleets on AWS."""

__version__ = "0.1.0"
