"""Prints the inputs and PyTorch (float64) results hard-coded in `src/main.rs` (`mod expected`).

Run: /opt/torchenv/bin/python nostd-check/gen_expected.py   (torch 2.9.1; any recent torch works)
"""
import torch

A = torch.tensor([[((i * 5 + j) % 7 - 3) / 4 for j in range(5)] for i in range(4)],
                 dtype=torch.float64, requires_grad=True)
B = torch.tensor([[((i * 3 + 2 * j) % 5 - 2) / 2 for j in range(3)] for i in range(5)],
                 dtype=torch.float64, requires_grad=True)
W = torch.tensor([[((i + 2 * j) % 4) - 1.5 for j in range(3)] for i in range(4)],
                 dtype=torch.float64)

C = A @ B
P = C.softmax(-1)
L = (P * W).sum()
L.backward()


def fmt(t):
    return ", ".join(repr(float(x)) for x in t.detach().flatten())


for name, t in [("A", A), ("B", B), ("W", W), ("C", C), ("P", P), ("LOSS", L),
                ("DA", A.grad), ("DB", B.grad)]:
    print(f"{name}: [{fmt(t)}]")
