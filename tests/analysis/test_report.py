"""The report's words on the GLIF gates: how far each moved from initialisation."""

from glif_jax.analysis import network, report


def test_gate_movement_text_names_the_largest_move_and_tabulates_every_gate():
  before = {"a": {"alpha": [0.5, 0.5], "beta": [0.5, 0.5], "gamma": [0.5, 0.5]}}
  after = {"a": {"alpha": [0.5, 0.52], "beta": [0.5, 0.5], "gamma": [0.47, 0.5]}}
  text = report.gate_movement_text(network.gate_movement(before, after))
  # mean |Δ| over the 6 channel-gates: (0.02 + 0.03) / 6
  assert text.startswith(
    "GLIF gates moved from initialisation by 0.0083 on average over layers, gates and channels "
    "(|Δ| after the sigmoid); the largest movement, 0.0300, is a channel's gamma in `a`."
  )
  assert "| `a` | alpha | 0.5000 | 0.5100 | 0.0100 | 0.0200 |" in text
  assert "| `a` | gamma | 0.5000 | 0.4850 | 0.0150 | 0.0300 |" in text
