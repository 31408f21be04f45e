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

Everything is built from the table of :mod:`tarea2_grader.tarea2.activaciones`.  Standalone on
purpose (imports torch and the standard library only): it runs inside the sandbox, which cannot
see the ``tarea2_grader`` package, right after the table's text in the same namespace.  The closed forms never call
autograd, because student code that calls them runs with autograd banned;
:mod:`tarea2_grader.tarea2.refs` checks them against autograd.
"""
import inspect

import torch

if "TABLA" not in globals():  # imported by the grader; in the sandbox activaciones.py ran first
    from tarea2_grader.tarea2.activaciones import TABLA, _param


def _con_firma(a, cuerpo):
    """A function named like activation ``a`` with the notebook's signature,
    ``f(T, [parametro=defecto,] gradient=False)``, that returns ``cuerpo(T, p, gradient)``."""
    if a.parametro is None:
        texto = "def {0}(T, gradient=False):\n    return _cuerpo(T, None, gradient)\n".format(a.nombre)
    else:
        texto = "def {0}(T, {1}={2!r}, gradient=False):\n    return _cuerpo(T, {1}, gradient)\n".format(
            a.nombre, a.parametro, a.defecto)
    espacio = {"_cuerpo": cuerpo, "__name__": __name__}
    exec(texto, espacio)
    return espacio[a.nombre]


# --------------------------------------------------------------------------- the closed forms


def _cerrada(a):
    """Activation ``a`` in closed form with the notebook's API."""
    return _con_firma(a, lambda T, p, gradient: a.derivada(T, p) if gradient else a.valor(T, p))


CERRADAS = {a.nombre: _cerrada(a) for a in TABLA}  # name -> closed form (the truth, never lent)


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


def _senuelo_de(a):
    """The activation lent for ``a``: exact values and derivative, a decoy for autograd."""
    return _con_firma(a, lambda T, p, gradient: a.derivada(T, p) if gradient else _disfrazar(a.valor(T, p), T, p))


ACTIVACIONES = {a.nombre: _senuelo_de(a) for a in TABLA}  # name -> the activation a test passes to student code


def CELoss(Q, P, estable=True, epsilon=1e-8):
    """Mean over the batch of -sum(P log Q)."""
    if estable:
        Q = Q.clamp(min=epsilon)
    return -(P * torch.log(Q)).sum(dim=1).mean()


# What the probe puts in the student's namespace: the notebook's own names only (a student's
# variable called like the new activation is left alone).
REFERENCIAS = dict({a.nombre: ACTIVACIONES[a.nombre] for a in TABLA if a.en_cuaderno}, CELoss=CELoss)
