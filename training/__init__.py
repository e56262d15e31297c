"""How good: data sets, proxy training, fine-tuning, evaluation."""
