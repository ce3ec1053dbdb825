"""Encoders used by both paths: dense (MiniLM), sparse (BM25), text normalisation and fingerprints."""
