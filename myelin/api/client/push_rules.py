"""Client-server API, "Push Rules: API": read and change the user's push rules."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()

Action = str | dict[str, Any]


class RuleBody(msgspec.Struct):
    actions: list[Action]
    conditions: list[dict[str, Any]] | None = None
    pattern: str | None = None


class EnabledBody(msgspec.Struct):
    enabled: bool


class ActionsBody(msgspec.Struct):
    actions: list[Action]


# The spec's paths end in "/" (``/pushrules/``); the slash-less form is served too.
@routes.client("GET", "/pushrules/")
@routes.client("GET", "/pushrules")
async def get_rulesets(request: MatrixRequest) -> dict[str, Any]:
    return await request.services.push_rules.rulesets_json(request.user.user_id)


@routes.client("GET", "/pushrules/global/")
@routes.client("GET", "/pushrules/global")
async def get_global_ruleset(request: MatrixRequest) -> dict[str, Any]:
    ruleset = await request.services.push_rules.ruleset(request.user.user_id)
    return ruleset.to_json()


@routes.client("GET", "/pushrules/global/{kind}/{ruleId}")
async def get_rule(request: MatrixRequest) -> dict[str, Any]:
    rule = await request.services.push_rules.get_rule(
        request.user.user_id, request.params["kind"], request.params["ruleId"])
    return rule.to_json()


@routes.client("PUT", "/pushrules/global/{kind}/{ruleId}", body=RuleBody)
async def put_rule(request: MatrixRequest) -> dict[str, Any]:
    body: RuleBody = request.body
    await request.services.push_rules.put_rule(
        request.user.user_id, request.params["kind"], request.params["ruleId"],
        actions=body.actions, conditions=body.conditions, pattern=body.pattern,
        before=request.query("before"), after=request.query("after"),
    )
    return {}


@routes.client("DELETE", "/pushrules/global/{kind}/{ruleId}")
async def delete_rule(request: MatrixRequest) -> dict[str, Any]:
    await request.services.push_rules.delete_rule(
        request.user.user_id, request.params["kind"], request.params["ruleId"])
    return {}


@routes.client("GET", "/pushrules/global/{kind}/{ruleId}/enabled")
async def get_enabled(request: MatrixRequest) -> dict[str, Any]:
    rule = await request.services.push_rules.get_rule(
        request.user.user_id, request.params["kind"], request.params["ruleId"])
    return {"enabled": rule.enabled}


@routes.client("PUT", "/pushrules/global/{kind}/{ruleId}/enabled", body=EnabledBody)
async def put_enabled(request: MatrixRequest) -> dict[str, Any]:
    body: EnabledBody = request.body
    await request.services.push_rules.set_enabled(
        request.user.user_id, request.params["kind"], request.params["ruleId"], body.enabled)
    return {}


@routes.client("GET", "/pushrules/global/{kind}/{ruleId}/actions")
async def get_actions(request: MatrixRequest) -> dict[str, Any]:
    rule = await request.services.push_rules.get_rule(
        request.user.user_id, request.params["kind"], request.params["ruleId"])
    return {"actions": list(rule.actions)}


@routes.client("PUT", "/pushrules/global/{kind}/{ruleId}/actions", body=ActionsBody)
async def put_actions(request: MatrixRequest) -> dict[str, Any]:
    body: ActionsBody = request.body
    await request.services.push_rules.set_actions(
        request.user.user_id, request.params["kind"], request.params["ruleId"], body.actions)
    return {}
