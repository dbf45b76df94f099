"""Policy-as-code access decisions for multi-agency information sharing."""

from engine.decision import Decision, FailedClause, NearMiss, Obligation, Reason
from engine.errors import Diagnostic, PolicyError, PolicyLoadError, PolicySyntaxError, RequestError
from engine.explain import explain_text
from engine.policy import CheckResult, Policy, check_path, load
from engine.shapes import DecisionDict, NearMissDict, ObligationDict, ReasonDict

__all__ = [
    "CheckResult",
    "Decision",
    "DecisionDict",
    "Diagnostic",
    "FailedClause",
    "NearMiss",
    "NearMissDict",
    "Obligation",
    "ObligationDict",
    "Policy",
    "PolicyError",
    "PolicyLoadError",
    "PolicySyntaxError",
    "Reason",
    "ReasonDict",
    "RequestError",
    "check_path",
    "explain_text",
    "load",
]
