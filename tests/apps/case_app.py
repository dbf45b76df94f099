"""A small case-management app guarded by the engine: the test app of docs/applications.md.

The requester comes from headers an identity proxy would set; each case is a
resource. `GET /cases/{id}` needs a permit to view for direct care; `GET
/cases` lists only the cases a plan permits. Obligations the app knows how to
carry out are registered; anything else the policy asks for refuses the permit.
"""

# No `from __future__ import annotations`: FastAPI reads the route's Annotated[..., Depends(may_view)]
# at run time, and `may_view` is local to create_app.
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request

from engine.decision import Decision
from engine.integrations.fastapi import Guard, ObligationCall, Obligations
from engine.policy import Policy

CASES: dict[str, dict[str, Any]] = {
    "c-1": {"category": "health", "classification": "official", "owner": "nhs"},
    "c-2": {"category": "health", "classification": "secret", "owner": "nhs"},
    "c-3": {"category": "education", "classification": "official", "owner": "school"},
}


def requester(request: Request) -> dict[str, Any]:
    return {"role": request.headers.get("x-role", ""), "agency": request.headers.get("x-agency", ""),
            "id": request.headers.get("x-user", "anonymous")}


def case_resource(request: Request) -> dict[str, Any]:
    case = CASES.get(request.path_params["case_id"])
    if case is None:
        raise HTTPException(404, "no such case")
    return {"id": request.path_params["case_id"], **case}


def create_app(policy: Policy, handled: tuple[str, ...] = ("audit",)) -> tuple[FastAPI, Guard, list[str]]:
    """The app, its guard, and the log its `audit` handler writes to."""
    audited: list[str] = []
    obligations = Obligations()

    def audit(call: ObligationCall) -> None:
        note = "undetermined " if call.undetermined else ""
        audited.append(f"{note}{call.name} {call.decision.decision_id} {call.request.url.path}")

    for name in handled:
        obligations.register(name, audit)
    guard = Guard(policy, requester=requester, obligations=obligations)
    app = FastAPI()

    may_view = guard.require("view", "direct_care", resource=case_resource)

    @app.get("/cases/{case_id}")
    async def read_case(case_id: str, decision: Annotated[Decision, Depends(may_view)]) -> dict[str, Any]:
        return {"case": case_id, "decision_id": decision.decision_id, "summary": decision.summary}

    @app.get("/cases")
    async def list_cases(request: Request) -> dict[str, Any]:
        plan = policy.plan({"requester": requester(request), "action": "view", "purpose": "direct_care"})
        return {"kind": plan.kind, "cases": [key for key, case in CASES.items() if plan.matches(case)]}

    return app, guard, audited
