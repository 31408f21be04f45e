"""The hidden tests' ground truth and their guards, tested without a kernel.

The references in ``tarea2_grader.refs`` are checked against finite
differences (independent of autograd), and the hidden tests are run on small
namespaces: the reference answers pass, autograd-using, constant and wrong
answers fail with a Spanish message that names the quantity.
"""
import pytest
import torch

from tarea2_grader import hidden, refs
from tarea2_grader.selfcheck import comparar, error_relativo

torch.set_default_dtype(torch.float32)


def central_difference(fn, X, eps=1e-6):
    """d sum(fn(X)) / dX elementwise, for an elementwise fn, by central differences."""
    return (fn(X + eps) - fn(X - eps)) / (2 * eps)


@pytest.mark.parametrize("nombre,p", [("sig", None), ("tanh", None), ("relu", None),
                                      ("swish", 0.7), ("swish", 1.9), ("celu", 0.4), ("celu", 1.6)])
def test_reference_derivatives_match_finite_differences(nombre, p):
    g = torch.Generator().manual_seed(0)
    T = torch.randn(40, 5, generator=g, dtype=torch.float64) * 3
    T = T[T.abs() > 1e-3]  # off the kinks
    f = refs.ACTIVACIONES[nombre]
    if p is None:
        analytic = (f(T, gradient=True),)
        numeric = (central_difference(f, T),)
    else:
        analytic = f(T, p, gradient=True)
        numeric = (central_difference(lambda X: f(X, p), T),
                   (f(T, p + 1e-6) - f(T, p - 1e-6)) / 2e-6)
    by_autograd = refs.derivada_autograd(nombre, T, p)
    for a, n, ag in zip(analytic, numeric, by_autograd):
        assert error_relativo(a, n) < 1e-7
        assert error_relativo(ag, n) < 1e-7


def test_relu_derivative_at_zero_is_zero_in_both_references():
    T = torch.zeros(3, dtype=torch.float64)
    assert refs.relu(T, gradient=True).tolist() == [0.0, 0.0, 0.0]
    assert refs.derivada_autograd("relu", T)[0].tolist() == [0.0, 0.0, 0.0]


def test_network_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(1)
    pesos = dict(Ws=[torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)],
                 bs=[torch.randn(4, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)],
                 U=torch.randn(2, 3, generator=g, dtype=torch.float64), c=torch.randn(3, generator=g, dtype=torch.float64),
                 fs=["swish", "celu"], params=[1.3, 0.7])
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.eye(3, dtype=torch.float64)[[0, 2, 1, 1, 0]]

    def loss():
        h = x
        for W, b, n, p in zip(pesos["Ws"], pesos["bs"], pesos["fs"], pesos["params"]):
            h = refs.ACTIVACIONES[n](h @ W + b, p)
        return refs.celoss(torch.softmax(h @ pesos["U"] + pesos["c"], dim=1), y, estable=False).item()

    grads = refs.grads_red_autograd(pesos, x, y)
    for nombre, tensor in [("W(1)", pesos["Ws"][0]), ("b(2)", pesos["bs"][1]), ("U", pesos["U"]), ("c", pesos["c"])]:
        numeric = torch.zeros_like(tensor)
        flat, out = tensor.view(-1), numeric.view(-1)
        for i in range(flat.numel()):
            v = flat[i].item()
            flat[i] = v + 1e-6
            up = loss()
            flat[i] = v - 1e-6
            down = loss()
            flat[i] = v
            out[i] = (up - down) / 2e-6
        assert error_relativo(grads[nombre], numeric) < 1e-6, nombre


def test_reference_network_backward_matches_autograd():
    g = torch.Generator().manual_seed(2)
    red = refs.RedDeReferencia(4, [6, 5], ["tanh", "relu"], 3, g).double()
    with torch.no_grad():
        for b in red.bs:
            b.normal_(generator=g)
    x = torch.randn(7, 4, generator=g, dtype=torch.float64)
    y = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 2, 1, 0, 0]]
    expected = torch.autograd.grad(refs.celoss(red(x), y, estable=False), list(red.parameters()))
    red.backward(x, y, red(x).detach())
    for p, e in zip(red.parameters(), expected):
        assert error_relativo(p.grad, e) < 1e-10


# --------------------------------------------------------------------------- hidden tests on small namespaces

def reference_namespace():
    ns = dict(refs.ACTIVACIONES)
    ns["CELoss"] = refs.celoss
    return ns


def test_reference_activations_pass_the_hidden_tests():
    ns = reference_namespace()
    hidden.test_derivadas_basicas(ns)
    hidden.test_derivadas_swish(ns)
    hidden.test_derivadas_celu(ns)
    hidden.test_celoss(ns)


def test_autograd_inside_a_derivative_scores_zero_with_a_reason():
    def relu(T, gradient=False):
        if not gradient:
            return torch.relu(T)
        X = T.detach().clone().requires_grad_(True)
        (d,) = torch.autograd.grad(torch.relu(X).sum(), X)
        return d

    ns = reference_namespace()
    ns["relu"] = relu
    with pytest.raises(hidden.Incorrecto, match="usa autograd"):
        hidden.test_derivadas_basicas(ns)


@pytest.mark.parametrize("via", ["Tensor.backward", "autograd.backward", "func.grad", "saved_reference"])
def test_every_autograd_entry_point_is_caught(via):
    from torch.autograd import grad as saved_grad  # a reference taken before the ban

    def sig(T, gradient=False):
        if not gradient:
            return torch.sigmoid(T)
        X = T.detach().clone().requires_grad_(True)
        if via == "Tensor.backward":
            torch.sigmoid(X).sum().backward()
            return X.grad
        if via == "autograd.backward":
            torch.autograd.backward(torch.sigmoid(X).sum())
            return X.grad
        if via == "func.grad":
            return torch.vmap(torch.func.grad(torch.sigmoid))(X.detach().reshape(-1)).reshape(X.shape)
        return saved_grad(torch.sigmoid(X).sum(), X)[0]

    ns = reference_namespace()
    ns["sig"] = sig
    with pytest.raises(hidden.Incorrecto, match="usa autograd"):
        hidden.test_derivadas_basicas(ns)
    # and the ban is lifted afterwards
    X = torch.ones(2, requires_grad=True)
    (X * 3).sum().backward()
    assert X.grad.tolist() == [3.0, 3.0]


def test_autograd_caught_even_when_the_student_swallows_the_exception():
    def tanh(T, gradient=False):
        if not gradient:
            return torch.tanh(T)
        try:
            X = T.detach().clone().requires_grad_(True)
            torch.tanh(X).sum().backward()
            return X.grad
        except Exception:
            return 1 - torch.tanh(T) ** 2

    ns = reference_namespace()
    ns["tanh"] = tanh
    with pytest.raises(hidden.Incorrecto, match="usa autograd"):
        hidden.test_derivadas_basicas(ns)


def test_constant_and_wrong_answers_fail_naming_the_quantity():
    ns = reference_namespace()
    ns["swish"] = lambda T, beta=1.0, gradient=False: (
        (torch.ones_like(T), torch.zeros_like(T)) if gradient else refs.swish(T, beta))
    with pytest.raises(hidden.Incorrecto, match=r"dswish/dT .*error relativo máximo"):
        hidden.test_derivadas_swish(ns)
    ns["CELoss"] = lambda Q, P, estable=True, epsilon=1e-8: -(P * torch.log(Q.clamp(min=epsilon))).sum()
    with pytest.raises(hidden.Incorrecto, match="CELoss"):
        hidden.test_celoss(ns)


def test_failure_messages_do_not_print_hidden_inputs():
    ns = reference_namespace()
    ns["sig"] = lambda T, gradient=False: T * 0 + 0.123456789 if gradient else torch.sigmoid(T)
    with pytest.raises(hidden.Incorrecto) as info:
        hidden.test_derivadas_basicas(ns)
    message = str(info.value)
    assert "tensor(" not in message and "0.123" not in message
    assert info.value.__traceback__.tb_next is None or "hidden.py" in info.value.__traceback__.tb_frame.f_code.co_filename


def test_student_stderr_and_warnings_are_swallowed(capfd):
    import sys
    import warnings

    def relu(T, gradient=False):
        print("depurando", file=sys.stderr)
        warnings.warn("cuidado")
        return (T > 0).to(T.dtype) if gradient else torch.relu(T)

    ns = reference_namespace()
    ns["relu"] = relu
    hidden.test_derivadas_basicas(ns)
    assert capfd.readouterr().err == ""


def test_monkeypatched_comparisons_do_not_help(monkeypatch):
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    import math
    monkeypatch.setattr(math, "isclose", lambda *a, **k: True)
    ns = reference_namespace()
    ns["relu"] = lambda T, gradient=False: torch.ones_like(T) if gradient else torch.relu(T)
    with pytest.raises(hidden.Incorrecto):
        hidden.test_derivadas_basicas(ns)


@pytest.mark.parametrize("patch", ["abs", "max", "sub", "equal"])
def test_patched_torch_arithmetic_is_detected_not_trusted(monkeypatch, patch):
    if patch == "equal":
        monkeypatch.setattr(torch, "equal", lambda a, b: True)
    elif patch == "sub":
        monkeypatch.setattr(torch.Tensor, "__sub__", lambda self, other: self * 0)
    else:
        monkeypatch.setattr(torch.Tensor, patch, lambda self, *a, **k: torch.zeros(()))
    ns = reference_namespace()
    ns["relu"] = lambda T, gradient=False: torch.ones_like(T) if gradient else torch.relu(T)
    with pytest.raises(hidden.Incorrecto, match="modificó funciones de torch"):
        hidden.test_derivadas_basicas(ns)


def test_selfcheck_comparar_flags_shape_and_value(capsys):
    assert comparar("a", torch.ones(2), torch.ones(2))
    assert not comparar("b", torch.ones(3), torch.ones(2))
    assert not comparar("c", torch.ones(2) * 1.01, torch.ones(2))
    out = capsys.readouterr().out
    assert out.count("ok") == 1 and out.count("REVISAR") == 2
