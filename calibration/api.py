"""REST API for calibration rounds (the annotator's side; live work is annotation's queue) and
for leads (anchors, calibration set, policy, standings). Thin: check the role, call a service."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from django.http import HttpResponse
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import annotating_project, judgment_input, project_where
from annotation.parsers import UntrustedJSONParser
from annotation.permissions import can_lead, can_see_all_judgments
from annotation.serializers import SubmitInput

from . import analytics_tables, selectors, serializers
from .services.analytics import analytics_policy_get, analytics_policy_update, analytics_state_fresh, snapshot_request
from .services.custom_cues import custom_cue_check, custom_cue_remove, custom_cue_save
from .services.anchors import ExpertAnswer, anchor_create, anchor_update, anchors_import, calibration_set_choose
from .services.dynamic_k import routing_update
from .services.policy import policy_get, policy_update
from .services.queue import calibration_answer, question_next
from .services.standing import recalibration_assign, standing_override


def _lead_project(request, slug: str):
    return project_where(request, slug, can_lead, "Only leads manage calibration.")


def _expert(data: dict) -> ExpertAnswer:
    return ExpertAnswer(
        choice=data["choice"],
        strength=data.get("strength", ""),
        dimensions=data.get("dimensions", {}),
        explanation=data["explanation"],
        clear_cut=data.get("clear_cut", True),
        flaw_tags=tuple(data.get("flaw_tags", ())),
    )


# ---------------------------------------------------------------- annotators


class MyCalibrationApi(APIView):
    @extend_schema(responses=serializers.CalibrationStatusOutput)
    def get(self, request, slug: str):
        """Your standing in the project, your open round's progress, and what you missed last time."""
        project = annotating_project(request, slug)
        return Response(selectors.annotator_calibration_status(project=project, annotator=request.user))


class CalibrationNextApi(APIView):
    @extend_schema(
        request=None,
        responses={200: serializers.QuestionOutput, 204: OpenApiResponse(description="No open calibration round.")},
    )
    def post(self, request, slug: str):
        """The next question of your open calibration round."""
        project = annotating_project(request, slug)
        question = question_next(project=project, annotator=request.user)
        if question is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(serializers.QuestionOutput(selectors.question_payload(question=question)).data)


class CalibrationAnswerApi(APIView):
    @extend_schema(request=SubmitInput, responses=serializers.AnswerOutput)
    def post(self, request, question_id: int):
        """Answer a calibration question; the expert's answer and explanation come back."""
        # Someone else's question is 404 whatever the body holds.
        selectors.question_for_annotator(question_id=question_id, annotator=request.user)
        data = SubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = calibration_answer(
            question_id=question_id, annotator=request.user, data=judgment_input(data.validated_data)
        )
        return Response(
            {"feedback": outcome.feedback, "round": outcome.round.number, "finished": outcome.finished,
             "state": outcome.state}
        )


# ---------------------------------------------------------------- leads


class PolicyApi(APIView):
    @extend_schema(responses=serializers.PolicySerializer)
    def get(self, request, slug: str):
        project = _lead_project(request, slug)
        return Response(serializers.PolicySerializer(policy_get(project=project)).data)

    @extend_schema(request=serializers.PolicySerializer, responses=serializers.PolicySerializer)
    def patch(self, request, slug: str):
        """Change calibration settings (threshold, set size, hidden rate, window, CUSUM...)."""
        project = _lead_project(request, slug)
        data = serializers.PolicySerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        policy = policy_update(project=project, changes=dict(data.validated_data))
        return Response(serializers.PolicySerializer(policy).data)


class RoutingApi(APIView):
    @extend_schema(responses=serializers.RoutingSerializer)
    def get(self, request, slug: str):
        project = _lead_project(request, slug)
        return Response(serializers.RoutingSerializer(project).data)

    @extend_schema(request=serializers.RoutingSerializer, responses=serializers.RoutingSerializer)
    def patch(self, request, slug: str):
        """Dynamic k: start comparisons at k_min judgments and add one at a time, up to the
        overlap, while the winner's posterior is under stop_confidence; every live comparison's
        target follows at once."""
        project = _lead_project(request, slug)
        data = serializers.RoutingSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        project = routing_update(project=project, changes=dict(data.validated_data))
        return Response(serializers.RoutingSerializer(project).data)


class AnchorListApi(APIView):
    parser_classes = [UntrustedJSONParser]

    @extend_schema(responses=serializers.AnchorAgreementOutput(many=True))
    def get(self, request, slug: str):
        """Every anchor with how often annotators agreed with the expert on it."""
        project = _lead_project(request, slug)
        return Response(serializers.AnchorAgreementOutput(selectors.anchor_agreement(project=project), many=True).data)

    @extend_schema(request=serializers.AnchorCreateInput, responses={201: serializers.AnchorOutput})
    def post(self, request, slug: str):
        """Turn an item into an anchor with the expert answer (canonical a/b)."""
        project = _lead_project(request, slug)
        data = serializers.AnchorCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        item = selectors.item_for_anchor_form(project=project, item_id=data.validated_data["item"])
        anchor = anchor_create(
            item=item, answer=_expert(data.validated_data), created_by=request.user,
            in_calibration_set=data.validated_data["in_calibration_set"],
        )
        return Response(serializers.AnchorOutput(anchor).data, status=status.HTTP_201_CREATED)


class AnchorDetailApi(APIView):
    @extend_schema(responses=serializers.AnchorOutput)
    def get(self, request, slug: str, anchor_id: int):
        project = _lead_project(request, slug)
        anchor = selectors.anchor_get(project=project, anchor_id=anchor_id)
        body = serializers.AnchorOutput(anchor).data
        body["history"] = serializers.AnchorRevisionOutput(selectors.anchor_history(anchor=anchor), many=True).data
        return Response(body)

    @extend_schema(request=serializers.AnchorUpdateInput, responses=serializers.AnchorOutput)
    def patch(self, request, slug: str, anchor_id: int):
        """Edit an anchor; a changed expert answer needs a reason and keeps the old one in history."""
        project = _lead_project(request, slug)
        selectors.anchor_get(project=project, anchor_id=anchor_id)
        data = serializers.AnchorUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        anchor = anchor_update(
            anchor_id=anchor_id, project=project, editor=request.user, reason=values.get("reason", ""),
            answer=_expert(values["expert"]) if "expert" in values else None,
            in_calibration_set=values.get("in_calibration_set"), active=values.get("active"),
        )
        return Response(serializers.AnchorOutput(anchor).data)


class AnchorImportApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request=serializers.AnchorImportInput, responses={201: OpenApiResponse(description="{created}")})
    def post(self, request, slug: str):
        """Import anchors from JSONL, all or nothing; bad lines come back with their numbers (422)."""
        project = _lead_project(request, slug)
        data = serializers.AnchorImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = anchors_import(project=project, lines=data.validated_data["file"], created_by=request.user)
        if not result.ok:
            return Response(
                {"detail": f"Nothing was imported: {len(result.errors)} line(s) are invalid.", "errors": result.errors},
                status=422,
            )
        return Response({"created": result.created}, status=status.HTTP_201_CREATED)


class CalibrationSetApi(APIView):
    @extend_schema(request=serializers.CalibrationSetInput, responses=OpenApiResponse(description="Coverage"))
    def post(self, request, slug: str):
        """Choose the calibration set from the active anchors to cover domains and dimensions."""
        project = _lead_project(request, slug)
        data = serializers.CalibrationSetInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(calibration_set_choose(project=project, size=data.validated_data.get("size")))


class StandingListApi(APIView):
    @extend_schema(responses=serializers.StandingRowOutput(many=True))
    def get(self, request, slug: str):
        """Each annotator's standing and anchor accuracy (95% Wilson interval)."""
        project = _lead_project(request, slug)
        return Response(serializers.StandingRowOutput(selectors.standings_table(project=project), many=True).data)


class StandingOverrideApi(APIView):
    @extend_schema(request=serializers.OverrideInput, responses=serializers.StandingChangeOutput)
    def post(self, request, slug: str, username: str):
        """Set an annotator's standing by hand; the reason goes into the audit trail."""
        project = _lead_project(request, slug)
        annotator = selectors.annotator_in_project(project=project, username=username)
        data = serializers.OverrideInput(data=request.data)
        data.is_valid(raise_exception=True)
        standing_override(project=project, annotator=annotator, to_state=data.validated_data["state"],
                          reason=data.validated_data["reason"], actor=request.user)
        change = selectors.standing_history(project=project, annotator_id=annotator.pk).first()
        return Response(serializers.StandingChangeOutput(change).data)


class RecalibrateApi(APIView):
    @extend_schema(request=serializers.RecalibrateInput, responses=serializers.StandingChangeOutput)
    def post(self, request, slug: str, username: str):
        """Assign a fresh calibration round: the annotator sees only calibration items until they pass."""
        project = _lead_project(request, slug)
        annotator = selectors.annotator_in_project(project=project, username=username)
        data = serializers.RecalibrateInput(data=request.data)
        data.is_valid(raise_exception=True)
        recalibration_assign(project=project, annotator=annotator, assigned_by=request.user,
                             reason=data.validated_data["reason"])
        change = selectors.standing_history(project=project, annotator_id=annotator.pk).first()
        return Response(serializers.StandingChangeOutput(change).data)


class StandingHistoryApi(APIView):
    @extend_schema(responses=serializers.StandingChangeOutput(many=True))
    def get(self, request, slug: str):
        """The audit trail of standing changes (optionally `?annotator=USERNAME`)."""
        project = _lead_project(request, slug)
        annotator_id = None
        if request.query_params.get("annotator"):
            annotator_id = selectors.annotator_in_project(project=project, username=request.query_params["annotator"]).pk
        changes = selectors.standing_history(project=project, annotator_id=annotator_id)[:500]
        return Response(serializers.StandingChangeOutput(changes, many=True).data)


# ---------------------------------------------------------------- analytics (leads and engineers)


def _analytics_project(request, slug: str):
    return project_where(request, slug, can_see_all_judgments, "Only leads and engineers see the project's analytics.")


def snapshot_summary(snapshot) -> dict | None:
    if snapshot is None:
        return None
    return {
        "id": snapshot.pk, "status": snapshot.status, "phase": snapshot.phase, "percent": snapshot.percent,
        "requested_at": snapshot.requested_at, "started_at": snapshot.started_at,
        "finished_at": snapshot.finished_at, "duration_ms": snapshot.duration_ms,
        "judgments_seen": snapshot.judgments_seen, "error": snapshot.error,
    }


class AnalyticsApi(APIView):
    @extend_schema(responses={200: OpenApiResponse(description=(
        "The latest computed dashboard: {snapshot, pending, failed, new_judgments, payload}. "
        "payload is null until a first computation finishes (POST analytics/refresh/)."))})
    def get(self, request, slug: str):
        """Agreement, pairwise κ, contested items, annotator bias flags and dataset health."""
        project = _analytics_project(request, slug)
        state = analytics_state_fresh(project=project)
        return Response({
            "snapshot": snapshot_summary(state["latest"]),
            "pending": snapshot_summary(state["pending"]),
            "failed": snapshot_summary(state["failed"]),
            "new_judgments": state["new_judgments"],
            "payload": state["latest"].payload if state["latest"] else None,
        })


class AnalyticsRefreshApi(APIView):
    @extend_schema(request=None, responses={202: OpenApiResponse(description="{id, status}: queued for a worker.")})
    def post(self, request, slug: str):
        """Queue a fresh computation (joins one already queued or running); after a failed one,
        this is its retry."""
        project = _analytics_project(request, slug)
        snapshot = snapshot_request(project=project, user=request.user)
        return Response(snapshot_summary(snapshot), status=status.HTTP_202_ACCEPTED)


class AnalyticsTableApi(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="The table as CSV.")})
    def get(self, request, slug: str, table: str):
        """One dashboard table as CSV: agreement, annotators, flags, pairwise, contested, coverage."""
        project = _analytics_project(request, slug)
        if table not in analytics_tables.TABLES:
            raise NotFound(f"No table '{table}'. Tables: {', '.join(analytics_tables.TABLES)}.")
        latest = selectors.analytics_state(project=project)["latest"]
        if latest is None:
            raise NotFound("Nothing computed yet: POST analytics/refresh/ first.")
        return csv_response(project.slug, table, latest.payload)


def csv_response(slug: str, table: str, payload: dict) -> HttpResponse:
    response = HttpResponse(analytics_tables.table_csv(table, payload), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}-{table}.csv"'
    return response


class CustomCuesApi(APIView):
    parser_classes = [UntrustedJSONParser]

    @extend_schema(responses={200: OpenApiResponse(description="The saved custom cues: [{name, keywords|pattern}].")})
    def get(self, request, slug: str):
        project = _analytics_project(request, slug)
        return Response(analytics_policy_get(project=project).custom_cues)

    @extend_schema(request=serializers.CustomCueInput, responses={200: OpenApiResponse(description=(
        "{cue, items_with_cue_on_one_side, timeouts, fdr, annotators: [{username, n, rate, expected, effect, "
        "low, high, q, discovered, words, examples}], saved: [...]}"))})
    def post(self, request, slug: str):
        """Who prefers responses with this cue, computed now (Benjamini-Hochberg over the
        annotators); saved for later computations unless save is false. Leads only."""
        project = _lead_project(request, slug)
        data = serializers.CustomCueInput(data=request.data)
        data.is_valid(raise_exception=True)
        spec = {k: v for k, v in data.validated_data.items() if k != "save"}
        result = custom_cue_check(project=project, spec=spec)
        saved = custom_cue_save(project=project, spec=spec) if data.validated_data["save"] else \
            analytics_policy_get(project=project).custom_cues
        return Response({**result, "saved": saved})


class CustomCueDeleteApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, slug: str, name: str):
        project = _lead_project(request, slug)
        custom_cue_remove(project=project, name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnalyticsPolicyApi(APIView):
    @extend_schema(responses=serializers.AnalyticsPolicySerializer)
    def get(self, request, slug: str):
        project = _analytics_project(request, slug)
        return Response(serializers.AnalyticsPolicySerializer(selectors.analytics_policy_read(project=project)).data)

    @extend_schema(request=serializers.AnalyticsPolicySerializer, responses=serializers.AnalyticsPolicySerializer)
    def patch(self, request, slug: str):
        """Change bias thresholds and dataset-health targets (leads only)."""
        project = _lead_project(request, slug)
        data = serializers.AnalyticsPolicySerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        policy = analytics_policy_update(project=project, changes=dict(data.validated_data))
        return Response(serializers.AnalyticsPolicySerializer(policy).data)
