"""Helpers that a hidden test lends to the student's code: correct code for *other* parts.

A test of Part 2c or 3 gives the student's code these activations and this ``CELoss`` (so a
wrong derivative in Part 1 costs points only in Part 1); the test of the training loop also
gets :mod:`tarea2_grader.ayudas_red` (a correct network and optimizer).  The supervisor sends
these files' text only to the probe process of a test that needs them, forked after the
student's cells ran, and only after the tests that grade these very functions have run: no
reference of what a test grades is reachable while it runs.

Standalone on purpose (imports torch only): it runs inside the sandbox, which cannot see the
``tarea2_grader`` package.  The closed forms never call autograd, because student code that
calls them runs with autograd banned; :mod:`tarea2_grader.refs` checks them against autograd.
"""
import torch


def _param(p, T):
    return torch.as_tensor(p, dtype=T.dtype, device=T.device)


def sig(T, gradient=False):
    s = torch.sigmoid(T)
    return s * (1 - s) if gradient else s


def tanh(T, gradient=False):
    t = torch.tanh(T)
    return 1 - t * t if gradient else t


def relu(T, gradient=False):
    return (T > 0).to(T.dtype) if gradient else torch.clamp(T, min=0)


def swish(T, beta=1.0, gradient=False):
    b = _param(beta, T)
    s = torch.sigmoid(b * T)
    if not gradient:
        return T * s
    return s + b * T * s * (1 - s), T * T * s * (1 - s)


def celu(T, alpha=1.0, gradient=False):
    a = _param(alpha, T)
    e = torch.exp(torch.clamp(T, max=0) / a)
    if not gradient:
        return torch.where(T > 0, T, a * (e - 1))
    d_dT = torch.where(T > 0, torch.ones_like(T), e)
    d_da = torch.where(T > 0, torch.zeros_like(T), e - 1 - T * e / a)
    return d_dT, d_da


for _f, _p in ((sig, None), (tanh, None), (relu, None), (swish, "beta"), (celu, "alpha")):
    _f.param = _p
ACTIVACIONES = {"sig": sig, "tanh": tanh, "relu": relu, "swish": swish, "celu": celu}


def CELoss(Q, P, estable=True, epsilon=1e-8):
    """Mean over the batch of -sum(P log Q)."""
    if estable:
        Q = Q.clamp(min=epsilon)
    return -(P * torch.log(Q)).sum(dim=1).mean()


REFERENCIAS = dict(ACTIVACIONES, CELoss=CELoss)
