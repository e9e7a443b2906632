"""REST export of preference pairs, streamed; frozen preference sets (freeze, read, export, diff)."""
from __future__ import annotations

import json
import tempfile

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.permissions import can_export
from annotation.api import project_where
from annotation.errors import Conflict
from annotation.services.jobs import JobStateError

from .curation import SPLITS, CurationPolicy
from .formats import FORMATS, TAGS, jsonl_line
from .models import FreezeRequest, PreferenceSet
from .selectors import (
    AGGREGATIONS, export_exclusions, export_rows_or_reason, freeze_request_by_id, preference_set_by_id,
    preference_sets_of,
)
from .serializers import FreezeInput, FreezeOutput, PreferenceSetOutput
from .services.sets import (
    PolicyError, freeze_progress, freeze_request, freeze_retry, preference_set_diff, set_jsonl, set_manifest,
    set_parquet,
)
from .set_formats import FILE_EXTENSIONS, SET_FORMATS


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
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR,
                   409: OpenApiResponse(description="Nothing to export with these settings; `detail` says why.")},
    )
    def get(self, request, slug: str):
        """JSONL that the trainers read unchanged: preference pairs (`trl`, `trl-conversational`;
        with `tag` and `flaw_type` columns; ties and both-bad excluded), rankings (`ranking`), or
        SFT rows from approved rewrites (`sft-messages`, `sft-prompt-completion`).

        Judgments of excluded annotators are left out unless `include_excluded=true`; the headers
        `X-Excluded-Annotators` and `X-Excluded-Judgments` say how many were left out. An export
        that would hold no row answers 409 with why (e.g. no ranking judgments, no approved
        rewrites), never an empty file."""
        project = project_where(request, slug, can_export, "Only leads and engineers export data.")
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
        rows, why = export_rows_or_reason(
            project=project, fmt=fmt, aggregate=aggregate, include_excluded=include_excluded, tags=tags
        )
        if rows is None:  # never a silent empty file: say why there is nothing (409)
            raise Conflict(why)
        response = StreamingHttpResponse((jsonl_line(r) for r in rows), content_type="application/x-ndjson")
        left_out = export_exclusions(project=project)
        response["X-Excluded-Annotators"] = 0 if include_excluded else left_out.annotators
        response["X-Excluded-Judgments"] = 0 if include_excluded else left_out.judgments
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{fmt}-{aggregate}.jsonl"'
        return response


# ---------------------------------------------------------------- preference sets


def _set_for(request, set_id: int) -> PreferenceSet:
    """A set its project's leads and engineers may read; 404 for non-members, 403 for annotators."""
    preference_set = preference_set_by_id(pk=set_id)
    if preference_set is None:
        raise NotFound("No such preference set.")
    project_where(request, preference_set.project.slug, can_export, "Only leads and engineers see preference sets.")
    return preference_set


class PreferenceSetListApi(APIView):
    @extend_schema(responses=PreferenceSetOutput(many=True))
    def get(self, request, slug: str):
        """The project's frozen preference sets, newest first (leads and engineers)."""
        project = project_where(request, slug, can_export, "Only leads and engineers see preference sets.")
        sets = preference_sets_of(project=project)
        return Response(PreferenceSetOutput(sets, many=True).data)

    @extend_schema(request=FreezeInput, responses={202: FreezeOutput})
    def post(self, request, slug: str):
        """Freeze the project's data under a curation policy as the next version, on the worker
        (the same path as the page). Answers 202 with the freeze to poll at /api/freezes/<id>/;
        the policy is checked at once (400)."""
        project = project_where(request, slug, can_export, "Only leads and engineers freeze preference sets.")
        data = FreezeInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            policy = CurationPolicy.from_dict(data.validated_data["policy"])
            freeze = freeze_request(project=project, policy=policy, created_by=request.user,
                                    name=data.validated_data["name"])
        except PolicyError as exc:
            raise ValidationError({"policy": exc.errors}) from None
        return Response(FreezeOutput(freeze).data, status=202)


def _freeze_for(request, request_id: int) -> FreezeRequest:
    freeze = freeze_request_by_id(pk=request_id)
    if freeze is None:
        raise NotFound("No such freeze.")
    project_where(request, freeze.project.slug, can_export, "Only leads and engineers see freezes.")
    return freeze


class FreezeDetailApi(APIView):
    @extend_schema(responses=FreezeOutput)
    def get(self, request, request_id: int):
        """A freeze's progress; once it succeeded, `preference_set` is the new set's id."""
        return Response(FreezeOutput(freeze_progress(request=_freeze_for(request, request_id))).data)


class FreezeRetryApi(APIView):
    @extend_schema(request=None, responses={202: FreezeOutput, 409: OpenApiResponse(description="It has not failed.")})
    def post(self, request, request_id: int):
        """Freeze again under a failed freeze's policy and name: a new freeze to poll (leads and engineers)."""
        try:
            freeze = freeze_retry(request=_freeze_for(request, request_id), user=request.user)
        except JobStateError as exc:
            return Response({"detail": str(exc)}, status=409)
        return Response(FreezeOutput(freeze).data, status=202)


class PreferenceSetDetailApi(APIView):
    @extend_schema(responses=PreferenceSetOutput)
    def get(self, request, set_id: int):
        return Response(PreferenceSetOutput(_set_for(request, set_id)).data)


def _format_and_split(request) -> tuple[str, str]:
    fmt = request.query_params.get("format", "trl")
    split = request.query_params.get("split", "")
    if fmt not in SET_FORMATS:
        raise ValidationError({"format": f"Use one of {', '.join(SET_FORMATS)}."})
    if split not in ("", *SPLITS):
        raise ValidationError({"split": f"Use one of {', '.join(SPLITS)}, or leave it out for both."})
    return fmt, split


class PreferenceSetExportApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("format", enum=SET_FORMATS, default="trl"),
                    OpenApiParameter("split", enum=SPLITS, required=False)],
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR, (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY},
    )
    def get(self, request, set_id: int):
        """The set's pairs as JSONL, streamed, byte-identical on every download. The manifest (set,
        version, hash, policy, counts, format) is in the `X-Manifest` header and at .../manifest/."""
        preference_set = _set_for(request, set_id)
        fmt, split = _format_and_split(request)
        name = f"{preference_set.project.slug}-v{preference_set.version}-{fmt}{'-' + split if split else ''}"
        extension = FILE_EXTENSIONS.get(fmt, "jsonl")
        if extension == "parquet":
            # Parquet ends with its footer: written to a temporary file in row groups, then sent.
            handle = tempfile.TemporaryFile()
            set_parquet(preference_set=preference_set, fmt=fmt, path=handle, split=split)
            handle.seek(0)
            response = FileResponse(handle, content_type="application/vnd.apache.parquet")
        else:
            response = StreamingHttpResponse(set_jsonl(preference_set=preference_set, fmt=fmt, split=split),
                                             content_type="application/x-ndjson")
        manifest = set_manifest(preference_set=preference_set, fmt=fmt, split=split)
        response["X-Manifest"] = json.dumps(manifest, sort_keys=True, ensure_ascii=True)
        response["Content-Disposition"] = f'attachment; filename="{name}.{extension}"'
        return response


class PreferenceSetManifestApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("format", enum=SET_FORMATS, default="trl"),
                               OpenApiParameter("split", enum=SPLITS, required=False)],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request, set_id: int):
        fmt, split = _format_and_split(request)
        return Response(set_manifest(preference_set=_set_for(request, set_id), fmt=fmt, split=split))


class PreferenceSetDiffApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, set_id: int, other_id: int):
        """Pairs added, removed and changed from this version to the other (same project)."""
        older, newer = _set_for(request, set_id), _set_for(request, other_id)
        if older.project_id != newer.project_id:
            raise ValidationError({"other": "Compare versions of the same project."})
        return Response(preference_set_diff(older=older, newer=newer))
