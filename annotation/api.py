"""REST API for labelling. Thin: parse input, check the role, call one service."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, serializers
from .permissions import can_import, can_lead, can_see_all_judgments
from .services.imports import import_job_create, import_job_progress
from .services.judgments import JudgmentInput, judgment_edit
from .services.projects import spec_publish
from .services.routing import assignment_skip


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


class SkipApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, assignment_id: int):
        assignment_skip(assignment_id=assignment_id, annotator=request.user)
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
    @extend_schema(request=serializers.JudgmentInput, responses=serializers.JudgmentOutput)
    def put(self, request, judgment_id: int):
        """Revise your own judgment; the previous version is kept in its history."""
        selectors.judgment_for_annotator(judgment_id=judgment_id, annotator=request.user)
        data = serializers.JudgmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        judgment = judgment_edit(judgment_id=judgment_id, editor=request.user, data=judgment_input(data.validated_data))
        return Response(serializers.JudgmentOutput(judgment).data)


class ImportCreateApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request=serializers.ImportInput, responses={202: serializers.ImportJobOutput})
    def post(self, request, slug: str):
        """Upload a JSONL file; it is validated and imported in the background (all or nothing)."""
        project = selectors.project_get_for_member(slug=slug, user=request.user)
        if not can_import(user=request.user, project=project):
            raise PermissionDenied("Only leads and engineers import items.")
        data = serializers.ImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = import_job_create(project=project, upload=data.validated_data["file"], created_by=request.user)
        return Response(serializers.ImportJobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetailApi(APIView):
    @extend_schema(responses=serializers.ImportJobOutput)
    def get(self, request, job_id: int):
        job = import_job_progress(job=selectors.import_job_get(job_id=job_id, user=request.user))
        return Response(serializers.ImportJobOutput(job).data)


class SpecPublishApi(APIView):
    @extend_schema(request=serializers.SpecInput, responses={201: serializers.SpecOutput})
    def post(self, request, slug: str):
        """Publish a new version of the behaviour spec (leads). Later judgments record it."""
        project = selectors.project_get_for_member(slug=slug, user=request.user)
        if not can_lead(user=request.user, project=project):
            raise PermissionDenied("Only leads publish the behaviour spec.")
        data = serializers.SpecInput(data=request.data)
        data.is_valid(raise_exception=True)
        spec = spec_publish(project=project, text=data.validated_data["text"], created_by=request.user)
        return Response(serializers.SpecOutput(spec).data, status=status.HTTP_201_CREATED)
