#!/usr/bin/env python3
"""The coefficients of the CPU encoder's vectorised erfc (src/cpu/vmath.h).

erfc(x) = exp(-x^2) * t * P(t), t = 1 / (1 + x/2), x >= 0, P of degree 9: a weighted least-squares
fit of erfc(x) exp(x^2) on [0, 10] (weight exp(-x^2), so that the error of erfc itself is what is
kept small). Prints the coefficients, highest power first, and the worst absolute error of the
float32 evaluation against math.erfc (about 2.5e-7, a couple of float32 ulps of 1 + erf).
Needs numpy."""
from math import erfc, exp

import numpy as np

P, DEG = 0.5, 10
xs = np.concatenate([np.linspace(0, 4, 20001), np.linspace(4, 10, 6001)])
r = np.array([erfc(x) * exp(x * x) for x in xs])
t = 1 / (1 + P * xs)
w = np.exp(-xs**2)
basis = np.stack([t ** (i + 1) for i in range(DEG)], 1)
coef, *_ = np.linalg.lstsq(basis * w[:, None], r * w, rcond=None)

x32 = xs.astype(np.float32)
t32 = np.float32(1) / (np.float32(1) + np.float32(P) * x32)
q = np.float32(coef[-1])
for c in coef[-2::-1]:
    q = q * t32 + np.float32(c)
approx = (q * t32 * np.exp(-(x32 * x32).astype(np.float64)).astype(np.float32)).astype(np.float32)
ref = np.array([erfc(x) for x in xs])
for c in coef[::-1]:
    print(f"{float(np.float32(c)):.9e}f,")
print(f"worst absolute error {np.abs(approx - ref).max():.3g}")
