"""REST export of preference pairs, streamed."""
from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.views import APIView

from annotation.permissions import can_export
from annotation.selectors import project_get_for_member

from .formats import FORMATS, TAGS, jsonl_line
from .selectors import AGGREGATIONS, export_exclusions, preference_rows


class PreferenceExportApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("format", enum=FORMATS, default="trl"),
            OpenApiParameter("aggregate", enum=AGGREGATIONS, default="none"),
            OpenApiParameter(
                "tags", str, default=",".join(TAGS),
                description=f"Pair formats: which pairs, comma-separated from {', '.join(TAGS)}.",
            ),
            OpenApiParameter(
                "include_excluded", bool, default=False,
                description="Also export judgments of annotators whose standing is excluded.",
            ),
        ],
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    def get(self, request, slug: str):
        """JSONL that the trainers read unchanged: preference pairs (`trl`, `trl-conversational`;
        with `tag` and `flaw_type` columns; ties and both-bad excluded), rankings (`ranking`), or
        SFT rows from approved rewrites (`sft-messages`, `sft-prompt-completion`).

        Judgments of excluded annotators are left out unless `include_excluded=true`; the headers
        `X-Excluded-Annotators` and `X-Excluded-Judgments` say how many were left out."""
        project = project_get_for_member(slug=slug, user=request.user)
        if not can_export(user=request.user, project=project):
            raise PermissionDenied("Only leads and engineers export data.")
        fmt = request.query_params.get("format", "trl")
        aggregate = request.query_params.get("aggregate", "none")
        if fmt not in FORMATS:
            raise ValidationError({"format": f"Use one of {', '.join(FORMATS)}."})
        if aggregate not in AGGREGATIONS:
            raise ValidationError({"aggregate": f"Use one of {', '.join(AGGREGATIONS)}."})
        include_excluded = request.query_params.get("include_excluded", "").lower() in ("1", "true", "yes", "on")
        tags = [t.strip() for t in request.query_params.get("tags", ",".join(TAGS)).split(",") if t.strip()]
        unknown = sorted(set(tags) - set(TAGS))
        if unknown:
            raise ValidationError({"tags": f"Unknown tag(s) {', '.join(unknown)}; use {', '.join(TAGS)}."})
        rows = preference_rows(
            project=project, fmt=fmt, aggregate=aggregate, include_excluded=include_excluded, tags=tags
        )
        response = StreamingHttpResponse((jsonl_line(r) for r in rows), content_type="application/x-ndjson")
        left_out = export_exclusions(project=project)
        response["X-Excluded-Annotators"] = 0 if include_excluded else left_out.annotators
        response["X-Excluded-Judgments"] = 0 if include_excluded else left_out.judgments
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{fmt}-{aggregate}.jsonl"'
        return response
