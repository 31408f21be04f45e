"""A correct network and optimizer lent to the test of the training loop (Part 4c) only.

Sent to the sandbox after :mod:`tarea2_grader.tarea2.ayudas`, in the same namespace (so ``CERRADAS``,
its closed-form activations, is already defined there); never to the tests of ``backward`` or
``SGD``, which grade what these implement.  The grader imports it too, to replay the training.
"""
import torch

if "CERRADAS" not in globals():  # imported by the grader; in the sandbox ayudas.py ran first
    from tarea2_grader.tarea2.ayudas import CERRADAS


class RedDeReferencia(torch.nn.Module):
    """A correct FFNN with a hand-written backward, built from given weights."""

    def __init__(self, Ws, bs, U, c, l_a):
        super().__init__()
        self.Ws = torch.nn.ParameterList([torch.nn.Parameter(w.clone()) for w in Ws])
        self.bs = torch.nn.ParameterList([torch.nn.Parameter(b.clone()) for b in bs])
        self.U = torch.nn.Parameter(U.clone())
        self.c = torch.nn.Parameter(c.clone())
        self.fs = [CERRADAS[n] for n in l_a]

    def forward(self, x):
        h = x
        for W, b, f in zip(self.Ws, self.bs, self.fs):
            h = f(h @ W + b)
        return torch.softmax(h @ self.U + self.c, dim=1)

    def backward(self, x, y, y_pred):
        with torch.no_grad():
            hs, us = [x], []
            for W, b, f in zip(self.Ws, self.bs, self.fs):
                us.append(hs[-1] @ W + b)
                hs.append(f(us[-1]))
            du = (y_pred - y) / x.shape[0]
            self.U.grad = hs[-1].T @ du
            self.c.grad = du.sum(0)
            dh = du @ self.U.T
            for k in reversed(range(len(self.Ws))):
                du = dh * self.fs[k](us[k], gradient=True)
                self.Ws[k].grad = hs[k].T @ du
                self.bs[k].grad = du.sum(0)
                dh = du @ self.Ws[k].T


class SGDReferencia:
    """p <- p - lr * p.grad, in place."""

    def __init__(self, parameters, lr):
        self.parameters, self.lr = list(parameters), lr

    def step(self):
        with torch.no_grad():
            for p in self.parameters:
                if p.grad is not None:
                    p -= self.lr * p.grad

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None
