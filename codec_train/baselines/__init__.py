"""Baseline codecs, each trained on the same task CNN and run through the same harness as SemanticNN."""
