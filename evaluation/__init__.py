"""Retrieval quality on BEIR-format datasets: `keel eval`, and the train-split tuner for the re-scorer."""
