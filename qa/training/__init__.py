"""Training and evaluating readers: fine-tuning (train, distractors), weight averaging (blend), SQuAD files
(squad), scoring (metrics), evaluation and calibration (evaluate). Imports the serving floor (qa/), which
never imports this room back."""
