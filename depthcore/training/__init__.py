"""Training: the objectives, the trainer and its schedule, the tokenizer and the feature cache."""
