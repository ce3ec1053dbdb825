"""Workflow and activity inputs and outputs: one dataclass in and one out per step, built with keywords."""
