"""Plans: typed models, loading with file:line errors, profiles, overrides, substitution."""

from enduro.plan.models import HttpWorkload, Plan, RequestSpec, RuleSpec, Service, Workload
from enduro.plan.resolve import LoadedPlan, load_plan, substitute

__all__ = [
    "HttpWorkload",
    "LoadedPlan",
    "Plan",
    "RequestSpec",
    "RuleSpec",
    "Service",
    "Workload",
    "load_plan",
    "substitute",
]
