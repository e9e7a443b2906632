"""Schema fuzzing: schemathesis generates requests from the served OpenAPI schema (drf-spectacular,
/api/schema/) and sends them in-process to the Django WSGI app, as each role (anonymous, annotator,
lead, engineer; DRF token), against a small real project. Whatever the request holds, the answer
is never a server error (5xx).

Per operation: schemathesis' coverage phase (boundary values, wrong types, missing and unexpected
properties, wrong content types), integers past what PostgreSQL stores in every integer parameter
and unbounded body property, and Hypothesis fuzzing with positive and negative data. Path
parameters are those of real objects (the project's slug, a held assignment's handle, ids of a
judgment, a set, a run...) so the views get past their 404s, except in the cases that are about a
path parameter and in one fuzzing pass where everything is generated.

Each request runs in a savepoint that is rolled back: every case meets the same world and a
failing one cannot poison the next. Derandomized, without shrinking or the example database: the
same requests on every run. SCHEMATHESIS_SCALE=6 (or more) makes a deeper run by hand.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.signals import got_request_exception, request_finished, request_started  # noqa: E402
from django.db import close_old_connections, transaction  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings, strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.core.parameters import ParameterLocation  # noqa: E402
from schemathesis.generation.coverage import GenerationSession  # noqa: E402
from schemathesis.generation.meta import CoverageScenario  # noqa: E402

from annotation.services.tokens import token_issue  # noqa: E402
from annotation.models import ItemKind, Rewrite, Role  # noqa: E402
from annotation.services.imports import import_job_create  # noqa: E402
from annotation.services.judgments import judgment_submit  # noqa: E402
from annotation.services.queue import queue_next, queue_skip  # noqa: E402
from calibration.services.queue import question_next  # noqa: E402
from calibration.services.standing import standing_with_policy  # noqa: E402
from rewards.curation import CurationPolicy  # noqa: E402
from rewards.models import RewardModel  # noqa: E402
from rewards.services.sets import freeze_request, preference_set_freeze  # noqa: E402
from training.models import Run, RunAlert, RunKind, RunStatus  # noqa: E402

from tests.factories import good_input  # noqa: E402
from tests.factories import (  # noqa: E402
    ItemFactory, ProjectFactory, adversarial_line, bad_case_line, import_lines, label_all, make_anchor, member,
    ranking_line,
)
from tests.permissions import people_of  # noqa: E402

pytestmark = pytest.mark.django_db

SCHEMA_PATH = "/api/schema/"
# Per operation: coverage cases at most, and Hypothesis examples per way of fuzzing (positive and
# negative data with real path parameters; everything generated, path included).
# SCHEMATHESIS_SCALE multiplies both for a deeper run by hand (the suite runs at 1: about 35 s a
# role on an idle core).
SCALE = float(os.environ.get("SCHEMATHESIS_SCALE", "1"))
COVERAGE_CAP = round(25 * SCALE)
FUZZ_EXAMPLES = {"real-positive": round(10 * SCALE), "real-negative": round(6 * SCALE), "generated": round(3 * SCALE)}
# Anonymous requests are refused before a body or parameter is read: only the credentials (the
# Authorization header, the session cookie) and the URL are worth varying.
ANONYMOUS_FUZZ_EXAMPLES = {"real-positive": round(4 * SCALE), "generated": round(2 * SCALE)}
# Past int4, past int8, past uint8, below int8.
OVERFLOWING = (2**31, 2**63, 2**64, -(2**63) - 1)
# Valid Python, not valid for the API: each goes into every property of an otherwise valid body.
HOSTILE_VALUES = (float("nan"), float("inf"), "a\x00b", "a\ud800b", 10**400)
ROLES = ["anonymous", "annotator", "lead", "engineer"]
ROOT = str(Path(__file__).resolve().parent.parent) + "/"

HYPOTHESIS = hypothesis_settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


@dataclass
class ServerError:
    operation: str
    way: str
    status: int
    request: str
    exception: str = ""

    def __str__(self) -> str:
        return f"{self.operation} [{self.way}] -> {self.status}\n  {self.request}\n  {self.exception}"


@dataclass
class Tally:
    operations: int = 0
    examples: dict[str, int] = field(default_factory=dict)  # requests by way of generating them
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, ServerError] = field(default_factory=dict)  # first one per operation and exception
    unsatisfiable: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def wsgi_app():
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


@pytest.fixture(scope="module")
def api_schema(wsgi_app, django_db_setup, django_db_blocker):
    """The schema as the API serves it (anonymously, like any client)."""
    with django_db_blocker.unblock():
        return schemathesis.openapi.from_wsgi(SCHEMA_PATH, wsgi_app)


@pytest.fixture
def in_process_requests():
    """What Django's test client does around a request: the test's transaction must survive the
    request's end (close_old_connections would close a connection that is inside a transaction).
    Collects the traceback of every unhandled exception."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # Thousands of 4xx are the point here: keep their warnings out of the report.
    request_log = logging.getLogger("django.request")
    level, request_log.level = request_log.level, logging.ERROR
    raised: list[str] = []

    def on_exception(sender, request=None, **kwargs):
        raised.append(exception_summary(sys.exc_info()[1]))

    got_request_exception.connect(on_exception)
    try:
        yield raised
    finally:
        got_request_exception.disconnect(on_exception)
        request_log.setLevel(level)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def exception_summary(exc: BaseException) -> str:
    """The exception and the project's own frames that led to it (not Django's or DRF's)."""
    frames = [
        f"{frame.filename.removeprefix(ROOT)}:{frame.lineno} {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.startswith(ROOT) and "/.venv/" not in frame.filename
    ]
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"[:300] + "".join(f"\n    at {f}" for f in frames[-6:])


def build_world(tmp_path) -> dict:
    """A small project as it looks in use: comparisons, a ranking, a bad case to rewrite and an
    adversarial item, judged by a peer; the fuzzed annotator has a judgment and holds a lease;
    anchors and a calibration set (a newcomer has a question), a frozen set, a queued freeze, an
    import, a reward model, a policy run with an alert, a queued reward run and an AI judge."""
    project = ProjectFactory(overlap=2)
    ItemFactory.create_batch(6, project=project)
    import_lines(project, [
        ranking_line("Rank these answers?", 3),
        bad_case_line("Explain photosynthesis?", "Plants eat dirt."),
        adversarial_line("What is 2 + 2?", "2 + 2 = 4."),
    ])
    people = people_of(project, peer=Role.ANNOTATOR)
    annotator, peer = people[Role.ANNOTATOR], people["peer"]
    for user in (annotator, peer):  # active: they joined before there was a calibration set
        standing_with_policy(project=project, annotator=user)
    label_all(project, [peer], prefer="a", rationale="The first one answers it; the other does not.")
    rewrite = Rewrite.objects.get(author=peer)

    judgment, handle = None, None
    while handle is None and (assignment := queue_next(project=project, annotator=annotator)) is not None:
        if assignment.item.kind != ItemKind.COMPARISON:
            queue_skip(assignment_id=assignment.pk, annotator=annotator)
        elif judgment is None:
            judgment, _ = judgment_submit(assignment_id=assignment.pk, annotator=annotator,
                                          client_token=uuid.uuid4(), data=good_input("right"))
        else:
            handle = assignment.handle
    assert judgment is not None and handle is not None and rewrite is not None

    anchors = [make_anchor(project, in_set=True, choice=c) for c in ("a", "b")] + [make_anchor(project)]
    newcomer = member(project, Role.ANNOTATOR)
    question = question_next(project=project, annotator=newcomer)
    assert question is not None

    lead, engineer = people[Role.LEAD], people[Role.ENGINEER]
    preference_set = preference_set_freeze(project=project, created_by=engineer, policy=CurationPolicy(
        standings=("calibrating", "active"), aggregation="none", test_fraction=0.25, seed=1))
    freeze = freeze_request(project=project, policy=CurationPolicy(), created_by=engineer, name="next")
    job = import_job_create(project=project, created_by=lead, upload=SimpleUploadedFile(
        "more.jsonl", b'{"prompt": "Why is the sky blue?", "responses": ["Scattering.", "Magic."]}\n'))
    reward_model = RewardModel.objects.create(
        project=project, preference_set=preference_set, name="rm-1", base_model=str(tmp_path / "base"),
        path=str(tmp_path / "rm"), ready=False, failures=["overall accuracy 0.55 < 0.70"],
        evaluation={"overall": {"accuracy": 0.55, "pairs": 4}},
    )
    policy_run = Run.objects.create(
        project=project, kind=RunKind.GRPO, preference_set=preference_set, config={}, status=RunStatus.SUCCEEDED,
        reward_model=reward_model, created_by=engineer,
    )
    RunAlert.objects.create(run=policy_run, step=3, kind="kl", message="KL 6.1 > 5.0", value=6.1,
                                    threshold=5.0, prompt_ids=[judgment.item.prompt_id])
    Run.objects.create(project=project, preference_set=preference_set, config={}, created_by=engineer)
    from training.services.judges import judge_create

    judge = judge_create(project=project, name="fuzzed judge", kind="endpoint", endpoint_url="http://127.0.0.1:9/v1",
                         endpoint_model="m")
    return {
        "project": project, "users": {"annotator": annotator, "lead": lead, "engineer": engineer},
        # Path parameters by name, for the operations that have them.
        "path": {
            "slug": project.slug, "handle": handle, "judgment_id": judgment.pk, "anchor_id": anchors[0].pk,
            "question_id": question.pk, "username": annotator.username, "table": "agreement",
            "set_id": preference_set.pk, "other_id": preference_set.pk, "request_id": freeze.pk,
            "job_id": job.pk, "run_id": policy_run.pk, "model_id": reward_model.pk,
            "rewrite_id": rewrite.pk, "judge_id": judge.pk,
        },
    }


def unbounded_integers(schema: dict, components: dict, path: tuple = ()) -> list[tuple]:
    """Key paths of the integer properties without a maximum in an object schema (nested objects
    too, not arrays)."""
    if "$ref" in schema:
        return unbounded_integers(components[schema["$ref"].rsplit("/", 1)[-1]], components, path)
    found = []
    for sub in schema.get("allOf", []):
        found += unbounded_integers(sub, components, path)
    if path and schema.get("type") == "integer" and "maximum" not in schema:
        found.append(path)
    for name, sub in schema.get("properties", {}).items():
        found += unbounded_integers(sub, components, (*path, name))
    return found


class Fuzzer:
    """Sends cases as one role, each in a savepoint that is rolled back, and tallies the answers."""

    def __init__(self, *, schema, headers: dict, path_values: dict, raised: list[str]) -> None:
        self.schema, self.headers, self.path_values, self.raised = schema, headers, path_values, raised
        self.tally = Tally()
        # Coverage remembers which paths it probed with undeclared methods; the schema's own
        # memory would make the cases depend on which roles ran before in this process.
        self.session = GenerationSession()

    def real_path(self, operation) -> dict:
        return {p.name: self.path_values[p.name] for p in operation.path_parameters if p.name in self.path_values}

    def send(self, case, *, way: str, **call_kwargs) -> None:
        self.raised.clear()
        savepoint = transaction.savepoint()
        try:
            status, text = self._call(case, **call_kwargs)
        finally:
            transaction.savepoint_rollback(savepoint)
        tally = self.tally
        tally.examples[way] = tally.examples.get(way, 0) + 1
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if status >= 500:
            exception = self.raised[-1] if self.raised else text[:300]
            key = f"{case.operation.label} {exception.splitlines()[0][:120]}"
            if key not in tally.errors:
                tally.errors[key] = ServerError(
                    operation=case.operation.label, way=way, status=status,
                    request=case.as_curl_command(headers=self.headers)[:1000]
                    + (f" (body sent: {call_kwargs['data'][:120]!r})" if "data" in call_kwargs else ""),
                    exception=exception,
                )

    def _call(self, case, **call_kwargs) -> tuple[int, str]:
        try:
            response = case.call(headers=self.headers, buffered=True, **call_kwargs)
        except Exception as exc:  # noqa: BLE001 - raised while streaming the body: the client gets a broken answer
            self.raised.append(exception_summary(exc))
            return 599, ""
        # A body only for the report: an export answers parquet bytes.
        return response.status_code, response.text_lossy()[:300] if response.status_code >= 500 else ""

    def coverage(self, operation) -> None:
        """Schemathesis' coverage phase (boundary values, wrong types, missing and unexpected
        properties, wrong content types), at most COVERAGE_CAP cases, round-robin over what each
        case is about so every parameter and scenario gets its turn. The path is real unless the
        case is about a path parameter."""
        config = self.schema.config.generation_for(operation=operation, phase="coverage")
        groups: dict[tuple, list] = {}
        for case in self.schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=config, session=self.session
        ):
            data = case.meta.phase.data
            if self.headers and data.parameter_location == ParameterLocation.HEADER and data.parameter != "Content-Type":
                continue  # the credentials are fixed for this role
            if not self.headers and data.parameter_location not in (None, ParameterLocation.HEADER):
                continue  # anonymous: refused before the rest is read
            if data.scenario == CoverageScenario.UNSPECIFIED_HTTP_METHOD:
                continue  # DRF answers 405 from the view's handlers before any code of ours runs
            key = (case.meta.generation.mode, data.scenario, data.parameter_location, data.parameter)
            groups.setdefault(key, []).append(case)
        chosen: list = []
        while len(chosen) < COVERAGE_CAP and any(groups.values()):
            for cases in groups.values():
                if cases and len(chosen) < COVERAGE_CAP:
                    chosen.append(cases.pop(0))
        real = self.real_path(operation)
        for case in chosen:
            if case.meta.phase.data.parameter_location != ParameterLocation.PATH:
                case.path_parameters = {**(case.path_parameters or {}), **real}
            self.send(case, way="coverage")

    def overflow(self, operation) -> None:
        """Integers past what PostgreSQL stores (int4, int8) in every integer path and query
        parameter; the fuzzer meets them only by chance."""
        real = self.real_path(operation)
        for parameter in [*operation.path_parameters, *operation.query]:
            if parameter.definition.get("schema", {}).get("type") != "integer":
                continue
            for value in OVERFLOWING:
                if parameter.location == "path":
                    case = operation.Case(path_parameters={**real, parameter.name: str(value)})
                else:
                    case = operation.Case(path_parameters=real, query={parameter.name: str(value)})
                self.send(case, way="overflow")

    def json_base(self, operation) -> dict | None:
        """A valid JSON body for the operation (schemathesis' coverage case with every property),
        None when it takes no JSON."""
        definition = self.schema.raw_schema["paths"][operation.path][operation.method.lower()]
        if "application/json" not in definition.get("requestBody", {}).get("content", {}):
            return None
        config = self.schema.config.generation_for(operation=operation, phase="coverage")
        return next((
            case.body for case in self.schema.iter_coverage_cases(
                operation, generation_modes=[GenerationMode.POSITIVE], generation_config=config,
                session=self.session)
            if case.media_type == "application/json" and isinstance(case.body, dict)
            and case.meta.phase.data.scenario == CoverageScenario.OBJECT_REQUIRED_AND_OPTIONAL
        ), {})

    def hostile_json(self, operation) -> None:
        """JSON that no schema describes (so neither phase sends it): NaN, infinities, NUL, a lone
        surrogate, a 400-digit integer in every property of a valid body; nesting 100,000 deep;
        bytes that are not UTF-8."""
        base = self.json_base(operation)
        if base is None:
            return
        real = self.real_path(operation)
        bodies = [
            json.dumps({key: value for key in (base or {"x": 0})}, allow_nan=True).encode()
            for value in HOSTILE_VALUES
        ] + [b"[" * 100_000 + b"]" * 100_000, b'{"x": "\xff\xfe"}']
        for body in bodies:
            case = operation.Case(path_parameters=real, body={}, media_type="application/json")
            self.send(case, way="hostile-json", data=body)

    def body_overflow(self, operation) -> None:
        """The same integers in every integer property of a JSON body that has no maximum (ids,
        steps, seeds), on an otherwise valid body so the view gets as far as using them."""
        definition = self.schema.raw_schema["paths"][operation.path][operation.method.lower()]
        body_schema = definition.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body_schema is None:
            return
        targets = unbounded_integers(body_schema, self.schema.raw_schema["components"]["schemas"])
        if not targets:
            return
        base = self.json_base(operation)
        real = self.real_path(operation)
        for target in targets:
            for value in OVERFLOWING:
                body = copy.deepcopy(base)
                container = body
                for key in target[:-1]:
                    container = container.setdefault(key, {})
                container[target[-1]] = value
                self.send(operation.Case(path_parameters=real, body=body, media_type="application/json"),
                          way="overflow")

    def fuzz(self, operation, *, way: str, examples: int) -> None:
        """Hypothesis-generated cases (schemathesis' fuzzing phase)."""
        # Fixed credentials are not generated; without them (anonymous) the Authorization header
        # and the session cookie are fuzzed too.
        fixed = {"headers": self.headers or None}
        real = self.real_path(operation)
        if way == "real-positive":
            strategy = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real, **fixed)
        elif way == "real-negative":
            strategy = operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real, **fixed)
        else:
            strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE, **fixed),
                                 operation.as_strategy(GenerationMode.NEGATIVE, **fixed))

        @hypothesis_settings(HYPOTHESIS, max_examples=examples)
        @given(case=strategy)
        def run(case):
            self.send(case, way=way)

        try:
            run()
        except Unsatisfiable:
            self.tally.unsatisfiable.append(f"{operation.label} [{way}]")


@pytest.mark.parametrize("role", ROLES)
def test_no_server_errors_whatever_the_request(role, api_schema, in_process_requests, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    world = build_world(tmp_path)
    headers = {}
    if role != "anonymous":
        _, secret = token_issue(user=world["users"][role])
        headers = {"Authorization": f"Token {secret}"}

    fuzzer = Fuzzer(schema=api_schema, headers=headers, path_values=world["path"], raised=in_process_requests)
    started = time.monotonic()
    for result in api_schema.get_all_operations():
        operation = result.ok()
        fuzzer.tally.operations += 1
        fuzzer.coverage(operation)
        if role != "anonymous":
            fuzzer.overflow(operation)
            fuzzer.body_overflow(operation)
            fuzzer.hostile_json(operation)
        for way, examples in (ANONYMOUS_FUZZ_EXAMPLES if role == "anonymous" else FUZZ_EXAMPLES).items():
            if way == "generated" and not len(operation.path_parameters):
                continue
            if way == "real-negative" and not (len(operation.query) or len(operation.body)):
                continue  # with the path fixed (and the credentials), nothing is left to get wrong
            fuzzer.fuzz(operation, way=way, examples=examples)
    tally = fuzzer.tally
    elapsed = time.monotonic() - started
    examples = ", ".join(f"{way} {n}" for way, n in tally.examples.items())
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(tally.statuses.items()))
    print(f"\nschemathesis {schemathesis.__version__} as {role}: {tally.operations} operations, "
          f"{sum(tally.examples.values())} requests ({examples}) in {elapsed:.1f}s; statuses {statuses}"
          + (f"; could not generate: {tally.unsatisfiable}" if tally.unsatisfiable else ""))
    if tally.errors:
        errors = "\n\n".join(str(error) for error in tally.errors.values())
        pytest.fail(f"{len(tally.errors)} server error(s) as {role}:\n\n{errors}", pytrace=False)
