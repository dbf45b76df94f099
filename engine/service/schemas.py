"""The shapes of the service's requests and answers, for its OpenAPI document.

These models document; they do not validate on the hot path. A decision
request's schema beyond the built-ins is defined by the policy set being
served (its `attributes` block), so the engine validates each request and
names the field at fault; the models below allow extra fields for that reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 1000


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Requester(_Open):
    id: str | None = Field(None, examples=["u-17"])
    role: str = Field(examples=["social_worker"], description="a declared role")
    agency: str = Field(examples=["manchester_cs"], description="a declared agency")


class Resource(_Open):
    id: str | None = Field(None, examples=["r-9"])
    category: str = Field(examples=["health"], description="a declared data category")
    classification: str = Field(examples=["official_sensitive"], description="a declared classification")
    owner: str = Field(examples=["mft"], description="the agency that holds the record")


class DecisionRequest(_Open):
    """A request to decide (docs/language.md, "What a request contains"); attributes beyond these are policy-defined."""

    requester: Requester
    action: str = Field(examples=["share"])
    resource: Resource
    purpose: str = Field(examples=["safeguarding.children"])
    context: dict[str, Any] | None = Field(
        default_factory=dict, examples=[{"risk_of_harm": True}],
        description="the policy's context.* attributes (null: none). `date` is set by the service from its clock; "
                    "a caller not allowed to set dates (ENGINE_DATE_CALLERS) that sends one gets 422")


class BatchRequest(BaseModel):
    requests: list[DecisionRequest] = Field(max_length=MAX_BATCH, description=f"at most {MAX_BATCH} requests")


class Reason(BaseModel):
    rule: str
    effect: Literal["permit", "deny"]
    description: str | None
    because: str | None
    file: str
    line: int
    missing: list[str] | None = Field(None, description="attributes a fail-closed deny rule lacked")


class Obligation(BaseModel):
    """A duty that comes with the decision; an undetermined one needs facts the request omitted,
    and a caller that cannot supply them treats it as applying."""

    name: str
    args: list[Any]
    status: Literal["applies", "undetermined"]
    needs: list[str] | None = None  # only when undetermined: the attribute paths it needs


class FailedClause(BaseModel):
    clause: str
    needed: str
    had: str | None
    text: str


class NearMiss(BaseModel):
    rule: str
    description: str | None
    file: str
    line: int
    failed: list[FailedClause]


class PolicyLabel(BaseModel):
    title: str | None
    version: str | None


class Decision(BaseModel):
    decision: Literal["permit", "deny"]
    decision_id: str
    policy_version: str = Field(description="content hash of the policy set, sha256:<16 hex>")
    policy: PolicyLabel | None = None
    reasons: list[Reason]
    obligations: list[Obligation]
    near_misses: list[NearMiss] = []
    summary: str
    denied_by: Literal["role_not_held"] | None = Field(
        None, description="set when the request was refused before any rule: the requester's role is not held "
                          "at their agency")


class BatchDecisions(BaseModel):
    decisions: list[Decision]


class PolicyInfo(BaseModel):
    version: str
    title: str | None
    label: str | None
    combine: str | None
    files: list[str]
    rules: int
    vocabulary: dict[str, int] = Field(description="how many of each kind of name the set declares")
    loaded_at: str
    warnings: list[dict[str, Any]]


class Reloaded(BaseModel):
    status: Literal["reloaded", "unchanged", "unconfirmed"] = Field(
        description="`unconfirmed`: this worker serves the set, but the workers listed in "
                    "`unconfirmed_workers` did not confirm it within 3 s")
    previous_version: str | None
    policy: PolicyInfo
    unconfirmed_workers: list[int | str] | None = Field(
        None, description="process ids of workers not yet serving it (`unknown` for one that never reported)")


class Health(BaseModel):
    status: str
    policy_version: str | None = None


class ErrorBody(BaseModel):
    """Every error: a code, a message, and the request field or other location at fault."""

    code: str = Field(examples=["invalid_request"])
    message: str = Field(examples=["unknown role `social_wroker`"])
    field: str | None = Field(None, examples=["requester.role"])
    location: dict[str, Any] | None = Field(None, examples=[{"in": "body", "line": 1, "column": 9}])
    help: str | None = Field(None, examples=["did you mean `social_worker`?"])
    diagnostics: list[dict[str, Any]] | None = Field(None, description="a refused policy set's diagnostics")
    rendered: str | None = Field(None, description="the diagnostics as the `engine check` command prints them")


class PlanRequest(_Open):
    """A decision request without its resource: the plan answers for every resource."""

    requester: Requester
    action: str = Field(examples=["view"])
    purpose: str = Field(examples=["safeguarding.children"])
    context: dict[str, Any] = Field(default_factory=dict, description="the policy's context.* attributes")


class PlanBranch(BaseModel):
    rule: str
    condition: dict[str, Any]
    obligations: list[dict[str, Any]]


class Plan(BaseModel):
    """Which resources `decide` would permit (docs/applications.md describes the condition tree)."""

    kind: Literal["always_allowed", "always_denied", "conditional"]
    condition: dict[str, Any] = Field(description="a condition over resource fields: and/or/not, eq, in, lt, ...")
    branches: list[PlanBranch] = Field(description="the permit rules behind the condition")
    obligations: list[dict[str, Any]] = Field(description="policy-wide obligations of a permit")
    denied_by: list[str] = Field(description="deny rules that refuse some resources")
    policy_version: str


class Vocabulary(BaseModel):
    """Every name the served set declares, in declaration order."""

    policy_version: str
    actions: list[dict[str, Any]]
    roles: list[dict[str, Any]] = Field(description="name, label, parents")
    purposes: list[dict[str, Any]] = Field(description="full dotted name, label, parents")
    categories: list[dict[str, Any]]
    classifications: list[dict[str, Any]] = Field(description="lowest first, with their rank")
    agencies: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    attributes: list[dict[str, Any]] = Field(description="path, type, label, required, values, default")
    obligations: list[dict[str, Any]] = Field(description="each name once, with the arguments of each use")


REQUEST_BODY_MODELS: dict[str, type[BaseModel]] = {"DecisionRequest": DecisionRequest, "BatchRequest": BatchRequest, "PlanRequest": PlanRequest}


def body_doc(model: str) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body read by hand rather than by FastAPI."""
    schema = {"$ref": f"#/components/schemas/{model}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "the body is not UTF-8 JSON", 401: "no or wrong API key / token",
        403: "forbidden (for a decision: the key may not speak for `requester.agency`)",
        409: "the policy set on disk has errors and was refused", 413: "the body is too large",
        415: "the body is not application/json", 422: "the request is invalid (names the field)",
        503: "no policy set is loaded yet",
    }
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}
