"""REST API for labelling. Thin: parse input, check the role, call one service."""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, serializers
from .after_response import AfterResponse
from .models import BadCaseSource, RewriteStatus
from .permissions import can_annotate, can_import, can_lead, can_see_all_judgments
from .services.badcases import bad_case_report
from .errors import ValidationFailed
from .importing import file_too_large
from .services.imports import import_job_create, import_job_progress, import_job_retry
from .services.judgment_imports import judgments_import
from .services.jobs import JobStateError
from .services.judgments import JudgmentInput, judgment_edit
from .services.negatives import NegativeInput as NegativeData, negative_submit
from .services.rubric_evals import RubricInput as RubricData, rubric_submit
from .services.projects import skills_set, spec_publish
from .services.quarantine import served_renderable
from .services.rankings import RankingInput as RankingData, ranking_submit
from .services.rewrites import RewriteInput as RewriteData, can_review_rewrite, rewrite_approve, rewrite_return, rewrite_revise, rewrite_submit
from .services.queue import queue_next, queue_skip, queue_submit
from .parsers import UntrustedJSONParser
from .security import FeedbackThrottle
from .services.production import (
    MAX_BODY_BYTES, feedback_intake, feedback_policy_update, feedback_receive, policy_of,
)
from .services.tokens import FEEDBACK_SCOPE, feedback_token_create, can_hold_tokens, token_create, token_revoke, token_of, token_rotate, tokens_of


def project_where(request, slug: str, allowed, refusal: str):
    """The project, for a member `allowed` there (a permissions.can_* check): 404 for non-members,
    whose answer does not confirm that it exists; 403 with `refusal` for members who may not. The
    one role-check preamble of every app's API."""
    project = selectors.project_get_for_member(slug=slug, user=request.user)
    if not allowed(user=request.user, project=project):
        raise PermissionDenied(refusal)
    return project


def annotating_project(request, slug: str):
    """The project, for one of its annotators (403 for other members, 404 for non-members)."""
    return project_where(request, slug, can_annotate, "Only annotators of this project receive items.")


def judgment_input(data: dict) -> JudgmentInput:
    return JudgmentInput(
        choice=data["choice"],
        strength=data.get("strength", ""),
        dimensions=data.get("dimensions", {}),
        rationale=data["rationale"],
        time_spent_ms=data.get("time_spent_ms", 0),
    )


class ProjectListApi(ListAPIView):
    serializer_class = serializers.ProjectOutput

    def get_queryset(self):
        return selectors.projects_for_user(user=self.request.user).select_related("current_spec")


class ProjectDetailApi(APIView):
    @extend_schema(responses=serializers.ProjectOutput)
    def get(self, request, slug: str):
        project = selectors.project_get_for_member(slug=slug, user=request.user)
        return Response(serializers.ProjectOutput(project).data)


# ---------------------------------------------------------------- the annotator's queue (next, submit, skip)


# One AssignmentOutput for every next and one SubmitInput for every submit: constructing a
# serializer per request deep-copies its declared fields, a twelfth of a next's web CPU
# (bench/annotate_load.py --py-spy). to_representation and run_validation read only their argument
# (no per-call state: `.data`, `.errors` and `.validated_data` are what keep state, and these are
# not used), so one instance serves every thread; the output and the validated data are those of a
# fresh serializer (tests/annotation/test_routing_sql.py checks), and errors are worded by one.
_ASSIGNMENT_OUTPUT = serializers.AssignmentOutput()
_SUBMIT_INPUT = serializers.SubmitInput()


class NextItemApi(APIView):
    @extend_schema(
        request=None,
        responses={
            200: serializers.AssignmentOutput,
            204: OpenApiResponse(description="Nothing left to label."),
            403: OpenApiResponse(description="Not active here yet: calibrate first (see calibration/)."),
        },
    )
    def post(self, request, slug: str):
        """Lease the next item to label (or the one you already hold)."""
        project = annotating_project(request, slug)

        def payload(assignment):
            data = _ASSIGNMENT_OUTPUT.to_representation(selectors.assignment_payload(assignment=assignment))
            JSONRenderer().render(data)  # raises here, not after the view, on text that cannot be sent
            return data

        # An item that cannot be sent is quarantined for the lead and the next one is served.
        data = served_renderable(lambda: queue_next(project=project, annotator=request.user), payload)
        if data is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(data)


class SubmitApi(APIView):
    @extend_schema(request=serializers.SubmitInput, responses={201: serializers.SubmitOutput, 200: serializers.SubmitOutput})
    def post(self, request, handle: str):
        """Submit a judgment. Idempotent by `client_token`: a retry returns the first judgment (200)."""
        try:
            valid = _SUBMIT_INPUT.run_validation(request.data)
        except ValidationError:
            # Someone else's assignment is 404 whatever the body holds; a valid body finds that
            # out in the submit's own locking query (no lookup of its own).
            selectors.assignment_for_annotator(handle=handle, annotator=request.user)
            # The errors as a fresh serializer words them (it rewords a missing body).
            data = serializers.SubmitInput(data=request.data)
            data.is_valid()
            raise ValidationError(data.errors) from None
        later = AfterResponse()
        outcome = queue_submit(
            handle=handle,
            annotator=request.user,
            data=judgment_input(valid),
            client_token=valid["client_token"],
            defer=later,
        )
        body = {"id": outcome.judgment.pk, "created": outcome.created}
        if outcome.feedback is not None:
            body["feedback"] = outcome.feedback
        return later.attach(Response(body, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK))


class SkipApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, handle: str):
        assignment = _own_assignment(request, handle)
        queue_skip(assignment_id=assignment.pk, annotator=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JudgmentListApi(ListAPIView):
    """Leads and engineers: every judgment of the project. Annotators: only their own, without
    item ids (an id range could tell items imported together, such as anchors, apart)."""

    serializer_class = serializers.JudgmentOutput

    def get_queryset(self):
        project = selectors.project_get_for_member(slug=self.kwargs["slug"], user=self.request.user)
        self.sees_all = can_see_all_judgments(user=self.request.user, project=project)
        return selectors.judgments_visible_to(user=self.request.user, project=project).select_related("spec_version")

    def get_serializer_class(self):
        return serializers.JudgmentOutput if getattr(self, "sees_all", False) else serializers.OwnJudgmentOutput


class JudgmentEditApi(APIView):
    @extend_schema(request=serializers.JudgmentInput, responses=serializers.OwnJudgmentOutput)
    def put(self, request, judgment_id: int):
        """Revise your own judgment; the previous version is kept in its history."""
        selectors.judgment_for_annotator(judgment_id=judgment_id, annotator=request.user)
        data = serializers.JudgmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        judgment = judgment_edit(judgment_id=judgment_id, editor=request.user, data=judgment_input(data.validated_data))
        # Without the item id, like the list: an id could tell an anchor from a live item.
        return Response(serializers.OwnJudgmentOutput(judgment).data)


class ImportCreateApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request=serializers.ImportInput, responses={202: serializers.ImportJobOutput})
    def post(self, request, slug: str):
        """Upload a JSONL file; it is validated and imported in the background (all or nothing)."""
        project = project_where(request, slug, can_import, "Only leads and engineers import items.")
        data = serializers.ImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = import_job_create(project=project, upload=data.validated_data["file"], created_by=request.user)
        return Response(serializers.ImportJobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class JudgmentImportApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request=serializers.JudgmentImportInput,
                   responses={201: serializers.JudgmentImportOutput, 422: serializers.JudgmentImportOutput})
    def post(self, request, slug: str):
        """Import judgments made elsewhere, checked whole and written all or nothing (422 with every
        problem by line or task); a re-run imports nothing twice. Leads and engineers."""
        project = project_where(request, slug, can_import, "Only leads and engineers import judgments.")
        data = serializers.JudgmentImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        too_large = file_too_large(upload.size, limit=settings.JUDGMENT_IMPORT_MAX_FILE_BYTES,
                                   setting="JUDGMENT_IMPORT_MAX_FILE_BYTES")
        if too_large:
            raise ValidationFailed(too_large, field_errors={"file": too_large})
        result = judgments_import(project=project, fh=upload.open("rb"))
        body = serializers.JudgmentImportOutput(result).data
        return Response(body, status=status.HTTP_201_CREATED if result.ok else 422)


class ImportDetailApi(APIView):
    @extend_schema(responses=serializers.ImportJobOutput)
    def get(self, request, job_id: int):
        job = import_job_progress(job=selectors.import_job_get(job_id=job_id, user=request.user))
        return Response(serializers.ImportJobOutput(job).data)


class ImportRetryApi(APIView):
    @extend_schema(request=None, responses={202: serializers.ImportJobOutput,
                                            409: OpenApiResponse(description="The import has not failed.")})
    def post(self, request, job_id: int):
        """Import a failed job's stored upload again, as a new job to poll (leads and engineers)."""
        job = selectors.import_job_get(job_id=job_id, user=request.user)
        if not can_import(user=request.user, project=job.project):
            raise PermissionDenied("Only leads and engineers import items.")
        try:
            again = import_job_retry(job=job, user=request.user)
        except JobStateError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(serializers.ImportJobOutput(again).data, status=status.HTTP_202_ACCEPTED)


class SpecPublishApi(APIView):
    @extend_schema(request=serializers.SpecInput, responses={201: serializers.SpecOutput})
    def post(self, request, slug: str):
        """Publish a new version of the behaviour spec (leads). Later judgments record it."""
        project = project_where(request, slug, can_lead, "Only leads publish the behaviour spec.")
        data = serializers.SpecInput(data=request.data)
        data.is_valid(raise_exception=True)
        spec = spec_publish(project=project, text=data.validated_data["text"], created_by=request.user)
        return Response(serializers.SpecOutput(spec).data, status=status.HTTP_201_CREATED)


# ---------------------------------------------------------------- rankings, rewrites, negatives


def _own_assignment(request, handle: str):
    # Someone else's assignment is 404 whatever the body holds (the services check it too).
    return selectors.assignment_for_annotator(handle=handle, annotator=request.user)


def _created(obj, created: bool, serializer) -> Response:
    return Response(serializer(obj).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RankingSubmitApi(APIView):
    @extend_schema(request=serializers.RankingInput, responses={201: serializers.RankingOutput, 200: serializers.RankingOutput})
    def post(self, request, handle: str):
        """Submit the order of a ranking item's responses, best first in the letters shown
        ('C>A=D>B'). Every response exactly once; `=` marks a tie. Idempotent by `client_token`."""
        assignment_id = _own_assignment(request, handle).pk
        data = serializers.RankingInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        judgment, created = ranking_submit(
            assignment_id=assignment_id, annotator=request.user, client_token=v["client_token"],
            data=RankingData(order=v["order"], rationale=v["rationale"], time_spent_ms=v["time_spent_ms"]),
        )
        return _created(judgment, created, serializers.RankingOutput)


def rewrite_data(v: dict) -> RewriteData:
    return RewriteData(
        text=v["text"], flaws=v["flaws"], rationale=v["rationale"], from_scratch=v["from_scratch"],
        time_spent_ms=v["time_spent_ms"],
    )


class RewriteSubmitApi(APIView):
    @extend_schema(request=serializers.RewriteSubmitInput, responses={201: serializers.RewriteOutput, 200: serializers.RewriteOutput})
    def post(self, request, handle: str):
        """Submit an expert rewrite of the bad response on this assignment. It counts once a lead
        or a second expert approves it."""
        assignment_id = _own_assignment(request, handle).pk
        data = serializers.RewriteSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        rewrite, created = rewrite_submit(
            assignment_id=assignment_id, author=request.user, client_token=data.validated_data["client_token"],
            data=rewrite_data(data.validated_data),
        )
        return _created(rewrite, created, serializers.RewriteOutput)


class NegativeSubmitApi(APIView):
    @extend_schema(request=serializers.NegativeInput, responses={201: serializers.NegativeOutput, 200: serializers.NegativeOutput})
    def post(self, request, handle: str):
        """Submit a deliberately flawed variant of the good response, with its flaw type. It
        becomes the pair (good > variant), tagged adversarial."""
        assignment_id = _own_assignment(request, handle).pk
        data = serializers.NegativeInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        negative, created = negative_submit(
            assignment_id=assignment_id, author=request.user, client_token=v["client_token"],
            data=NegativeData(text=v["text"], flaw_type=v["flaw_type"], rationale=v["rationale"], time_spent_ms=v["time_spent_ms"]),
        )
        return _created(negative, created, serializers.NegativeOutput)


class RubricSubmitApi(APIView):
    @extend_schema(request=serializers.RubricInput, responses={201: serializers.RubricOutput, 200: serializers.RubricOutput})
    def post(self, request, handle: str):
        """Submit a rubric evaluation: each of the item's checks pass, fail or na (not applicable),
        in the order given, and a rationale. Idempotent by `client_token`."""
        assignment_id = _own_assignment(request, handle).pk
        data = serializers.RubricInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        answer, created = rubric_submit(
            assignment_id=assignment_id, author=request.user, client_token=v["client_token"],
            data=RubricData(answers=v["answers"], rationale=v["rationale"], time_spent_ms=v["time_spent_ms"]),
        )
        return _created(answer, created, serializers.RubricOutput)


class RewriteListApi(ListAPIView):
    """Reviewers (leads; annotators with the domain's skill): rewrites to review (`?status=`
    submitted, returned or approved; default submitted). Annotators without skills, and anyone
    with `?mine=true`: their own (`?status=returned&mine=true`: what was sent back to revise)."""

    serializer_class = serializers.RewriteOutput

    def get_queryset(self):
        project = selectors.project_get_for_member(slug=self.kwargs["slug"], user=self.request.user)
        wanted = self.request.query_params.get("status", "submitted")
        if wanted not in RewriteStatus.values:
            raise ValidationError({"status": f"Use one of {', '.join(RewriteStatus.values)}."})
        self.as_lead = can_lead(user=self.request.user, project=project)
        mine = self.request.query_params.get("mine", "").lower() in ("1", "true", "yes")
        if not mine and selectors.can_review_any_rewrite(user=self.request.user, project=project):
            return selectors.rewrites_reviewable_by(user=self.request.user, project=project, status=wanted)
        if not can_annotate(user=self.request.user, project=project):
            raise PermissionDenied("Only annotators, reviewers and leads see rewrites.")
        self.as_lead = False
        return selectors.rewrites_of_author(project=project, author=self.request.user, status=wanted)

    def get_serializer_class(self):
        return serializers.RewriteLeadOutput if getattr(self, "as_lead", False) else serializers.RewriteOutput


class RewriteReviewApi(APIView):
    @extend_schema(request=serializers.ReviewInput, responses=serializers.RewriteOutput)
    def post(self, request, rewrite_id: int):
        """Approve a rewrite (it becomes a response and the pair rewrite > original) or send it
        back to its author with a comment. Leads, or a second expert with the domain's skill."""
        rewrite = selectors.rewrite_get(rewrite_id=rewrite_id, user=request.user)
        if not can_review_rewrite(user=request.user, rewrite=rewrite):
            raise PermissionDenied("Nobody reviews their own rewrite: a lead or a second expert does.")
        data = serializers.ReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v["action"] == "approve":
            rewrite = rewrite_approve(rewrite_id=rewrite.pk, reviewer=request.user, comment=v["comment"])
        else:
            rewrite = rewrite_return(rewrite_id=rewrite.pk, reviewer=request.user, comment=v["comment"])
        return Response(serializers.RewriteOutput(rewrite).data)


class RewriteReviseApi(APIView):
    @extend_schema(request=serializers.RewriteInput, responses=serializers.RewriteOutput)
    def put(self, request, rewrite_id: int):
        """The author revises a rewrite that was sent back; it waits for review again."""
        selectors.rewrite_for_author(rewrite_id=rewrite_id, author=request.user)
        data = serializers.RewriteInput(data=request.data)
        data.is_valid(raise_exception=True)
        rewrite = rewrite_revise(rewrite_id=rewrite_id, author=request.user, data=rewrite_data(data.validated_data))
        return Response(serializers.RewriteOutput(rewrite).data)


class BadCaseApi(APIView):
    @extend_schema(responses=serializers.BadCaseOutput(many=True))
    def get(self, request, slug: str):
        """Bad cases and where they came from (leads and engineers)."""
        project = project_where(request, slug, can_see_all_judgments, "Only leads and engineers see bad cases.")
        return Response(serializers.BadCaseOutput(selectors.bad_cases_of(project=project), many=True).data)

    @extend_schema(request=serializers.BadCaseInput, responses={201: serializers.BadCaseOutput, 200: serializers.BadCaseOutput})
    def post(self, request, slug: str):
        """Mark a response as a bad case (leads). It gets one rewrite task; marking it again
        only records the report."""
        project = project_where(request, slug, can_lead, "Only leads mark bad cases.")
        data = serializers.BadCaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        response = selectors.response_in_project(response_id=data.validated_data["response"], project=project)
        case, created = bad_case_report(
            project=project, response=response, source=BadCaseSource.LEAD, reported_by=request.user,
            note=data.validated_data["note"],
        )
        return _created(case, created, serializers.BadCaseOutput)


class SkillsApi(APIView):
    @extend_schema(request=serializers.SkillsInput, responses=serializers.SkillsInput)
    def put(self, request, slug: str, username: str):
        """Set an annotator's domain skills (leads). Rewrite tasks of a skill domain go only to
        annotators holding that skill."""
        project = project_where(request, slug, can_lead, "Only leads set skills.")
        data = serializers.SkillsInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.member_by_username(project=project, username=username)
        return Response({"skills": skills_set(project=project, user=user, skills=data.validated_data["skills"])})


class DesignedDataApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        """Counts of bad cases, rewrites by status, adversarial negatives by flaw type (with how
        many are longer than their good response), derived pairs and rankings."""
        project = project_where(request, slug, can_see_all_judgments, "Only leads and engineers see the dataset view.")
        return Response(selectors.designed_data_overview(project=project))


# ---------------------------------------------------------------- API tokens: a lead or engineer lists,
# creates, rotates and revokes their own (/api/tokens/).
def _check_token_holder(request):
    if not can_hold_tokens(user=request.user):
        raise PermissionDenied("Only leads and engineers may hold API tokens.")


class TokenListApi(APIView):
    @extend_schema(responses=serializers.TokenOutput(many=True))
    def get(self, request):
        _check_token_holder(request)
        return Response(serializers.TokenOutput(tokens_of(user=request.user), many=True).data)

    @extend_schema(request=serializers.TokenInput, responses={201: serializers.TokenWithSecretOutput})
    def post(self, request):
        _check_token_holder(request)
        data = serializers.TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = token_create(user=request.user, **data.validated_data)
        return Response(serializers.TokenWithSecretOutput(token, context={"secret": secret}).data,
                        status=status.HTTP_201_CREATED)


class TokenDetailApi(APIView):
    @extend_schema(responses=serializers.TokenOutput)
    def get(self, request, token_id: int):
        _check_token_holder(request)
        token = token_of(user=request.user, token_id=token_id)
        return Response(serializers.TokenOutput(token).data)

    @extend_schema(request=None, responses=serializers.TokenOutput, description="Revoke: the token stops working.")
    def delete(self, request, token_id: int):
        _check_token_holder(request)
        token = token_revoke(token=token_of(user=request.user, token_id=token_id))
        return Response(serializers.TokenOutput(token).data)


class TokenRotateApi(APIView):
    @extend_schema(request=None, responses=serializers.TokenWithSecretOutput,
                   description="A new secret for the token; the old one stops working at once.")
    def post(self, request, token_id: int):
        _check_token_holder(request)
        token = token_of(user=request.user, token_id=token_id)
        secret = token_rotate(token=token)
        token.refresh_from_db()
        return Response(serializers.TokenWithSecretOutput(token, context={"secret": secret}).data)


# ---------------------------------------------------------------- production feedback (issue 23)


class ProductionFeedbackApi(APIView):
    """The product's backend posts what its users flag, with a token scoped to this endpoint and
    project (leads issue it: POST .../production-feedback/tokens/). Validated whole (422 naming each
    field), at most 64 KB (413), idempotent by external_id (a replay: 200 with the first result;
    another body: 409), rate-limited per token (429), personal data scrubbed before storing, then
    sampled by the project's policy (annotation/services/production.py)."""

    token_scope = FEEDBACK_SCOPE
    throttle_classes = [FeedbackThrottle]
    parser_classes = [UntrustedJSONParser]

    @extend_schema(request=serializers.ProductionFeedbackInput,
                   responses={201: serializers.ProductionFeedbackOutput, 200: serializers.ProductionFeedbackOutput})
    def post(self, request, slug: str):
        token = request.auth
        if getattr(token, "scope", "") != FEEDBACK_SCOPE:
            raise PermissionDenied("Only a production-feedback token posts here (leads issue one per project).")
        project = selectors.project_of_scoped_token(token=token, slug=slug)
        if project is None:
            raise NotFound("No such project for this token.")
        if not can_lead(user=token.user, project=project):
            raise PermissionDenied("The lead who issued this token is no longer a lead of the project; a lead issues "
                                   "a new one (Settings).")
        if len(request.body) > MAX_BODY_BYTES:
            return Response({"detail": f"The body is larger than {MAX_BODY_BYTES} bytes; nothing was stored."},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        row, created = feedback_receive(project=project, data=request.data)
        return Response(serializers.ProductionFeedbackOutput(row).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class FeedbackPolicyApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        """The sampling policy and the intake so far: received, kept, dropped by rule, tasks (leads)."""
        project = project_where(request, slug, can_lead, "Only leads see the production feedback intake.")
        policy = policy_of(project=project)
        return Response({"policy": serializers.FeedbackPolicySerializer(policy).data,
                         "intake": feedback_intake(project=project)})

    @extend_schema(request=serializers.FeedbackPolicySerializer, responses=serializers.FeedbackPolicySerializer)
    def patch(self, request, slug: str):
        project = project_where(request, slug, can_lead, "Only leads set the production feedback policy.")
        data = serializers.FeedbackPolicySerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        policy = feedback_policy_update(project=project, changes=dict(data.validated_data))
        return Response(serializers.FeedbackPolicySerializer(policy).data)


class FeedbackTokenApi(APIView):
    @extend_schema(request=None, responses={201: serializers.FeedbackTokenOutput})
    def post(self, request, slug: str):
        """A token for the product's backend that reaches only this project's feedback intake (leads).
        The secret is in this answer only."""
        project = project_where(request, slug, can_lead, "Only leads issue production-feedback tokens.")
        name = request.data.get("name", "") if isinstance(request.data, dict) else ""
        token, secret = feedback_token_create(project=project, lead=request.user, name=str(name))
        return Response({"id": token.pk, "name": token.name, "prefix": token.prefix, "secret": secret,
                         "expires_at": token.expires_at}, status=status.HTTP_201_CREATED)
