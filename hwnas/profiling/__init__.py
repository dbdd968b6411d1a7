"""Profiling: sampling plans, the profile store and the profile runner."""

from hwnas.profiling.runner import (
    ProfileConfig, ProfileSummary, Task, measure_runners, measure_tasks, plan_tasks, profile, reference_task,
)
from hwnas.profiling.reference import Drift, fit_reference, reference_architecture
from hwnas.profiling.store import ProfileStore, read_profile, read_records, record_key

__all__ = [
    "ProfileConfig", "ProfileSummary", "Task", "measure_tasks", "measure_runners", "reference_task",
    "reference_architecture", "fit_reference", "Drift", "plan_tasks", "profile", "ProfileStore", "read_profile",
    "read_records", "record_key",
]
