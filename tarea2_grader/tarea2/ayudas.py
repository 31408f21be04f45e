"""Helpers that a hidden test lends to the student's code: correct code for *other* parts.

A test of Part 2c or 3 gives the student's code these activations and this ``CELoss`` (so a
wrong derivative in Part 1 costs points only in Part 1); the test of the training loop also
gets :mod:`tarea2_grader.tarea2.ayudas_red` (a correct network and optimizer).  The supervisor sends
these files' text only to the probe process of a test that needs them, forked after the
student's cells ran, and only after the tests that grade these very functions have run: no
reference of what a test grades is reachable while it runs.

The activations lent (``ACTIVACIONES``) are *decoys* (señuelos): their values are exact and
``f(T, gradient=True)`` gives the true derivative, but autograd sees through their forward
another function, :func:`senuelo` (see :func:`_disfrazar`).  Code that asks autograd for the
gradient of a layer or a network built with them gets gradients the grader recognises
(:func:`tarea2_grader.tarea2.refs.grad_capa_senuelo`); honest code, which takes every derivative from
``f(u, gradient=True)``, never notices.  Besides the five activations of the notebook there is
one students have never seen (``softplus`` with a parameter ``beta``).

Standalone on purpose (imports torch and the standard library only): it runs inside the
sandbox, which cannot see the ``tarea2_grader`` package.  The closed forms never call
autograd, because student code that calls them runs with autograd banned;
:mod:`tarea2_grader.tarea2.refs` checks them against autograd.
"""
import inspect

import torch


def _param(p, T):
    return torch.as_tensor(p, dtype=T.dtype, device=T.device)


# --------------------------------------------------------------------------- the closed forms


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


def softplus(T, beta=1.0, gradient=False):
    """log(1 + exp(beta T)) / beta: smooth everywhere; not in the notebook (students never saw it)."""
    b = _param(beta, T)
    f = torch.logaddexp(torch.zeros_like(T), b * T) / b
    if not gradient:
        return f
    s = torch.sigmoid(b * T)
    return s, (T * s - f) / b


CERRADAS = {f.__name__: f for f in (sig, tanh, relu, swish, celu, softplus)}


def parametro(f):
    """The name of f's parameter (``beta``, ``alpha``...) or None: read from its signature, as the
    notebook's given code does (a parameter other than the tensor and ``gradient``)."""
    nombres = list(inspect.signature(f).parameters)[1:]
    otros = [n for n in nombres if n != "gradient"]
    return otros[0] if otros else None


# --------------------------------------------------------------------------- the decoys


def senuelo(T):
    """What autograd sees in a lent activation: T/2 + sin(3T)/4, whose derivative 1/2 + 3/4·cos(3T)
    oscillates and changes sign, unlike any activation's derivative or any slip in computing one."""
    return 0.5 * T + 0.25 * torch.sin(3 * T)


def _disfrazar(valor, T, p=None):
    """``valor`` (the activation at T), exactly; autograd sees :func:`senuelo` (T) instead, and
    for a parameter p, d/dp = senuelo(T) (so a gradient w.r.t. p exists and code runs through)."""
    s = senuelo(T)
    falso = s - s.detach()  # exactly 0, with the derivative of s
    if p is not None:
        P = _param(p, T)
        falso = falso + (P - P.detach()) * s
    falso = torch.where(torch.isfinite(s), falso, torch.zeros_like(falso))
    return valor.detach() + falso


def _senuelos():
    """The activations lent to student code, with the closed forms' names and signatures."""
    def sig(T, gradient=False):
        return CERRADAS["sig"](T, gradient=True) if gradient else _disfrazar(CERRADAS["sig"](T), T)

    def tanh(T, gradient=False):
        return CERRADAS["tanh"](T, gradient=True) if gradient else _disfrazar(CERRADAS["tanh"](T), T)

    def relu(T, gradient=False):
        return CERRADAS["relu"](T, gradient=True) if gradient else _disfrazar(CERRADAS["relu"](T), T)

    def swish(T, beta=1.0, gradient=False):
        f = CERRADAS["swish"]
        return f(T, beta, gradient=True) if gradient else _disfrazar(f(T, beta), T, beta)

    def celu(T, alpha=1.0, gradient=False):
        f = CERRADAS["celu"]
        return f(T, alpha, gradient=True) if gradient else _disfrazar(f(T, alpha), T, alpha)

    def softplus(T, beta=1.0, gradient=False):
        f = CERRADAS["softplus"]
        return f(T, beta, gradient=True) if gradient else _disfrazar(f(T, beta), T, beta)

    senuelos = (sig, tanh, relu, swish, celu, softplus)
    for f in senuelos:
        f.__qualname__ = f.__name__
    return {f.__name__: f for f in senuelos}


ACTIVACIONES = _senuelos()  # name -> the activation a test passes to the student's code


def CELoss(Q, P, estable=True, epsilon=1e-8):
    """Mean over the batch of -sum(P log Q)."""
    if estable:
        Q = Q.clamp(min=epsilon)
    return -(P * torch.log(Q)).sum(dim=1).mean()


# What the probe puts in the student's namespace: the notebook's own names only (a student's
# variable called like the new activation is left alone).
REFERENCIAS = dict({n: ACTIVACIONES[n] for n in ("sig", "tanh", "relu", "swish", "celu")}, CELoss=CELoss)
