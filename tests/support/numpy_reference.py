"""Independent plain-loop NumPy implementations of GLIF, GLIF_f and KLIF (float64).

Forward passes follow the equations of docs/explanation/neurons.md line by line; backward
passes are hand-derived backpropagation through time with the surrogate derivative of the
spike. They share
no code with `glif_jax`.
"""

import numpy as np


def sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def rectangle_grad(z, width=1.0):
  return (np.abs(z) < width / 2).astype(np.float64) / width


def sigmoid_grad(z, alpha=4.0):
  s = sigmoid(alpha * z)
  return alpha * s * (1 - s)


def glif_values(raw, gating="soft"):
  """Maps a dict of raw logits to values: sigmoids, gates 1[σ > 0.5] if ``gating="hard"``."""
  v = {name: sigmoid(np.asarray(value, np.float64)) for name, value in raw.items()}
  if gating == "hard":
    v.update({g: (v[g] > 0.5).astype(np.float64) for g in ("alpha", "beta", "gamma")})
  return v


def glif_forward(raw, x, gating="soft"):
  """GLIF. x: [T, B, C]; raw: dict of (C,) logits, conduct (T, C).

  Returns (u [T,B,C], o [T,B,C]).
  """
  v = glif_values(raw, gating)
  a = 1 - v["alpha"] * (1 - v["tau"])
  u_prev = np.zeros(x.shape[1:])
  o_prev = np.zeros(x.shape[1:])
  us, os_ = [], []
  for t in range(x.shape[0]):
    current = x[t] * (1 - v["beta"] * (1 - v["conduct"][t]))
    u = (
      a * u_prev * (1 - v["gamma"] * o_prev)
      - (1 - v["alpha"]) * v["leak"]
      + current
      - (1 - v["gamma"]) * v["v_reset"] * o_prev
    )
    o = (u - v["v_th"] > 0).astype(np.float64)
    us.append(u)
    os_.append(o)
    u_prev, o_prev = u, o
  return np.stack(us), np.stack(os_)


def glif_backward(raw, x, grad_spikes, gating="soft"):
  """Hand-derived BPTT of sum(grad_spikes · o) for GLIF (rectangle surrogate).

  ``gating="hard"`` runs binary gates whose gradient passes straight through to the
  sigmoid; ``"static"`` gives the gates no gradient.

  Returns (dx [T,B,C], dict of d raw logit, same shapes as raw).
  """
  v = glif_values(raw, gating)
  u, o = glif_forward(raw, x, gating)
  num_t = x.shape[0]
  zeros = np.zeros(x.shape[1:])
  a = 1 - v["alpha"] * (1 - v["tau"])
  h, s = v["gamma"], (1 - v["gamma"]) * v["v_reset"]
  gain = 1 - v["beta"] * (1 - v["conduct"])  # (T, C)
  da = dh = dl = ds = dth = 0.0
  dgain = np.zeros_like(gain)
  dx = np.zeros_like(x)
  du_next = zeros  # dL/du_{t+1}, total
  for t in reversed(range(num_t)):
    o_t = o[t]
    # contributions of u_t and o_t to u_{t+1}
    du_future = du_next * a * (1 - h * o_t) if t + 1 < num_t else zeros
    do_future = du_next * (-a * u[t] * h - s) if t + 1 < num_t else zeros
    do_total = grad_spikes[t] + do_future
    sg = rectangle_grad(u[t] - v["v_th"])
    du = do_total * sg + du_future
    u_prev = u[t - 1] if t > 0 else zeros
    o_prev = o[t - 1] if t > 0 else zeros
    da = da + (du * u_prev * (1 - h * o_prev)).sum(0)
    dh = dh + (du * (-a * u_prev * o_prev)).sum(0)
    dl = dl + (-du).sum(0)
    ds = ds + (-du * o_prev).sum(0)
    dth = dth + (-do_total * sg).sum(0)
    dx[t] = du * gain[t]
    dgain[t] = (du * x[t]).sum(0)
    du_next = du
  d_alpha = -da * (1 - v["tau"]) - dl * v["leak"]
  d_value = {
    "alpha": d_alpha,
    "tau": da * v["alpha"],
    "leak": dl * (1 - v["alpha"]),
    "gamma": dh - ds * v["v_reset"],
    "v_reset": ds * (1 - v["gamma"]),
    "v_th": dth,
    "beta": -(dgain * (1 - v["conduct"])).sum(0),
    "conduct": dgain * v["beta"],
  }
  sig = glif_values(raw)
  d_raw = {name: d_value[name] * sig[name] * (1 - sig[name]) for name in raw}
  if gating == "static":
    d_raw.update({g: np.zeros_like(d_raw[g]) for g in ("alpha", "beta", "gamma")})
  return dx, d_raw


def glif_f_forward(raw, x):
  """GLIF_f: u_t = τ·u·(1 − o) − V_L + G_t·X_t − V_R·o. Returns (u, o)."""
  v = glif_values(raw)
  u_prev = np.zeros(x.shape[1:])
  o_prev = np.zeros(x.shape[1:])
  us, os_ = [], []
  for t in range(x.shape[0]):
    u = (
      v["tau"] * u_prev * (1 - o_prev) - v["leak"] + v["conduct"][t] * x[t] - v["v_reset"] * o_prev
    )
    o = (u - v["v_th"] > 0).astype(np.float64)
    us.append(u)
    os_.append(o)
    u_prev, o_prev = u, o
  return np.stack(us), np.stack(os_)


def klif_forward(k, x, tau=2.0, v_th=1.0, v_reset=0.0, decay_input=True, scale_reset=False):
  """KLIF as SpikingJelly's KLIFNode. x: [T, ...]. Returns (v [T], s [T], h [T])."""
  rest = 0.0 if v_reset is None else v_reset
  v_prev = np.full(x.shape[1:], rest)
  vs, ss, hs = [], [], []
  for t in range(x.shape[0]):
    if decay_input:
      h = v_prev + (x[t] - (v_prev - rest)) / tau
    else:
      h = v_prev - (v_prev - rest) / tau + x[t]
    f = np.maximum(k * h, 0.0)
    spike = (f - v_th >= 0).astype(np.float64)
    if v_reset is None:
      v = f - spike * v_th
      v = v / k if scale_reset else v
    else:
      kept = f / k if scale_reset else f
      v = kept * (1 - spike) + v_reset * spike
    vs.append(v)
    ss.append(spike)
    hs.append(h)
    v_prev = v
  return np.stack(vs), np.stack(ss), np.stack(hs)


def klif_backward(k, x, grad_spikes, tau=2.0, v_th=1.0, v_reset=0.0, alpha=4.0):
  """Hand-derived BPTT of sum(grad_spikes · S) for KLIF (decay_input, hard reset, sigmoid).

  Returns (dx [T, ...], dk scalar).
  """
  _, s, h = klif_forward(k, x, tau, v_th, v_reset)
  f = np.maximum(k * h, 0.0)
  dx = np.zeros_like(x)
  dk = 0.0
  dv = np.zeros(x.shape[1:])  # dL/dV_t from the future
  for t in reversed(range(x.shape[0])):
    ds = grad_spikes[t] + dv * (v_reset - f[t])
    df = dv * (1 - s[t]) + ds * sigmoid_grad(f[t] - v_th, alpha)
    relu_on = (k * h[t] > 0).astype(np.float64)
    dh = df * k * relu_on
    dk += (df * h[t] * relu_on).sum()
    dx[t] = dh / tau
    dv = dh * (1 - 1 / tau)
  return dx, dk


def klif_backward_general(
  k, x, grad_spikes, tau=2.0, v_th=1.0, v_reset=0.0, decay_input=True, scale_reset=False, alpha=4.0
):
  """Hand-derived BPTT of sum(grad_spikes · S) for KLIF with any reset and input option.

  Sigmoid surrogate, reset not detached. Returns (dx [T, ...], dk scalar).
  """
  _, s, h = klif_forward(k, x, tau, v_th, v_reset, decay_input, scale_reset)
  f = np.maximum(k * h, 0.0)
  dx = np.zeros_like(x)
  dk = 0.0
  dv = np.zeros(x.shape[1:])  # dL/dV_t from the future
  for t in reversed(range(x.shape[0])):
    if v_reset is None:  # V = W / k (scale_reset) or W, W = F − V_th·S
      w = f[t] - v_th * s[t]
      dw = dv / k if scale_reset else dv
      dk += (-dv * w / k**2).sum() if scale_reset else 0.0
      ds = grad_spikes[t] - v_th * dw
      df = dw
    else:  # V = K·(1 − S) + V_reset·S, K = F / k (scale_reset) or F
      kept = f[t] / k if scale_reset else f[t]
      d_kept = dv * (1 - s[t])
      dk += (-d_kept * f[t] / k**2).sum() if scale_reset else 0.0
      ds = grad_spikes[t] + dv * (v_reset - kept)
      df = d_kept / k if scale_reset else d_kept
    df = df + ds * sigmoid_grad(f[t] - v_th, alpha)
    relu_on = (k * h[t] > 0).astype(np.float64)
    dh = df * k * relu_on
    dk += (df * h[t] * relu_on).sum()
    dx[t] = dh / tau if decay_input else dh
    dv = dh * (1 - 1 / tau)
  return dx, dk
