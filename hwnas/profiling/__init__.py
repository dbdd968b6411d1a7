"""Profiling: sampling plans, the profile store and the profile runner."""

from hwnas.profiling.runner import (
    ProfileConfig,
    ProfileSummary,
    Task,
    measure_tasks,
    plan_tasks,
    profile,
)
from hwnas.profiling.store import ProfileStore, read_profile, read_records, record_key

__all__ = [
    "ProfileConfig",
    "ProfileSummary",
    "Task",
    "measure_tasks",
    "plan_tasks",
    "profile",
    "ProfileStore",
    "read_profile",
    "read_records",
    "record_key",
]
