"""The agreement, bias and dataset-health dashboard: load a project's judgments into arrays once,
compute every number with the pure modules (agreement, bias, health), and keep the result as an
AnalyticsSnapshot that pages read. Computed by a Celery task, never inside a request."""
from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field as dc_field

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Case, Count, IntegerField, Max, Q, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Item, ItemKind, Judgment, Membership, Project, RankingJudgment
from annotation.services.jobs import JobKind, job_enqueue, job_fresh, job_guarded, job_kind_register

from .. import agreement, bias, discovery, health
from ..ranking_agreement import ranking_agreement
from ..models import AnalyticsPolicy, AnalyticsSnapshot, SnapshotStatus, Standing, StandingState
from .policy import policy_get, settings_apply
from .proposals import proposals_sync
from .reasks import REASK_MIN_FOR_RATE, self_consistency

CHOICES = ("a", "b", "tie", "both_bad")
# The signed strength scale for ordinal α: A much better ... tie ... B much better.
ORDINAL = (("a", "strong"), ("a", "clear"), ("a", "slight"), ("tie", ""), ("b", "slight"), ("b", "clear"), ("b", "strong"))
HARD_TAGS = {"hard", "hard_case", "adversarial", "policy_edge"}
CONTESTED_LISTED = 100
# A page visit recomputes numbers older than this when judgments came in since.
REFRESH_AFTER = dt.timedelta(minutes=10)
KEEP_SNAPSHOTS = 5

ANALYTICS_FIELDS = (
    "length_gap_chars", "bias_margin", "position_margin", "significance", "min_judgments", "assertive_gap",
    "reading_chars_per_second", "fast_share", "contested_disagreement", "hard_share_min", "hard_share_max",
    "domain_targets", "difficulty_targets", "time_window_days", "bootstrap_samples",
)


# --- settings --------------------------------------------------------------------------------

def analytics_policy_get(*, project: Project) -> AnalyticsPolicy:
    policy, _ = AnalyticsPolicy.objects.get_or_create(project=project)
    return policy


def analytics_policy_update(*, project: Project, changes: dict) -> AnalyticsPolicy:
    return settings_apply(instance=analytics_policy_get(project=project), changes=changes, allowed=ANALYTICS_FIELDS)


def thresholds_of(policy: AnalyticsPolicy) -> bias.Thresholds:
    return bias.Thresholds(
        length_gap_chars=policy.length_gap_chars, margin=policy.bias_margin, position_margin=policy.position_margin,
        alpha=policy.significance, min_n=policy.min_judgments, assertive_gap=policy.assertive_gap,
        reading_chars_per_second=policy.reading_chars_per_second, fast_share=policy.fast_share,
    )


# --- loading ---------------------------------------------------------------------------------

@dataclass
class Dataset:
    item_ids: np.ndarray
    previews: list[str]
    domain: list[str]
    difficulty: list[str]
    hard: np.ndarray
    items: bias.Items
    clear_cut: np.ndarray
    annotator_ids: np.ndarray
    usernames: list[str]
    standing: list[str]
    judgments: bias.Judgments
    ordinal: np.ndarray  # per judgment, index into ORDINAL or -1
    dimensions: dict[str, np.ndarray]  # per judgment, index into CHOICES or -1
    created: np.ndarray  # epoch seconds
    cues: list = dc_field(default_factory=list)  # discovery.Cue per item, for bias discovery
    texts: tuple[list[str], list[str]] = ((), ())  # the two responses of each item (custom cues)


def _code(expression, mapping: dict) -> Case:
    return Case(*(When(**{expression: k}, then=Value(v)) for k, v in mapping.items()), default=Value(-1),
                output_field=IntegerField())


def _epoch(field: str) -> RawSQL:
    # Epoch seconds computed by the database: converting a million datetimes in Python costs
    # more than the rest of the load.
    column = f'"{Judgment._meta.db_table}"."{field}"'
    if connection.vendor == "postgresql":
        return RawSQL(f"EXTRACT(EPOCH FROM {column})::bigint", [], output_field=IntegerField())
    return RawSQL(f"CAST(strftime('%%s', {column}) AS INTEGER)", [], output_field=IntegerField())


def _fetch(queryset) -> list[tuple]:
    # The ORM builds the query; the cursor returns plain tuples without Django's per-row work.
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _preview(messages, limit: int = 120) -> str:
    text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict) and m.get("role") == "user")
    return text[:limit] + ("…" if len(text) > limit else "")


def _json(value):
    # A raw cursor returns JSON decoded on PostgreSQL and as text on SQLite.
    return json.loads(value) if isinstance(value, str) else value


def _item_rows(project: Project) -> list[tuple]:
    return sorted(_fetch(
        Item.objects.filter(project=project, kind=ItemKind.COMPARISON, judgment_count__gt=0, reask_of__isnull=True)
        .order_by().values_list(
            "id", "prompt__domain", "prompt__difficulty", "prompt__tags", "prompt__messages",
            "response_a__text", "response_b__text", "anchor__expert_choice", "anchor__clear_cut", "anchor__active",
            "response_a__model_name", "response_b__model_name", "anchor__flaw_tags",
        )
    ))


def _item_features(item_rows: list[tuple]) -> tuple[list, bias.Items]:
    """Pure Python over the texts: no database, so it can run beside the judgment query."""
    choice_code = {c: i for i, c in enumerate(CHOICES)}
    fa = [bias.text_features(r[5]) for r in item_rows]
    fb = [bias.text_features(r[6]) for r in item_rows]
    messages = [_json(r[4]) or [] for r in item_rows]
    prompt_chars = np.array([sum(len(str(m.get("content", ""))) for m in ms if isinstance(m, dict)) for ms in messages])
    expert = np.array([choice_code.get(r[7], -1) if r[7] and r[9] else -1 for r in item_rows], dtype=np.int64)
    items = bias.Items(
        len_a=np.array([f.chars for f in fa], dtype=float), len_b=np.array([f.chars for f in fb], dtype=float),
        assert_a=np.array([f.assertiveness for f in fa]), assert_b=np.array([f.assertiveness for f in fb]),
        list_a=np.array([f.is_list for f in fa]), list_b=np.array([f.is_list for f in fb]),
        read_chars=np.array([f.chars for f in fa]) + np.array([f.chars for f in fb]) + prompt_chars,
        expert=expert,
    )
    prompts = [" ".join(str(m.get("content", "")) for m in ms if isinstance(m, dict) and m.get("role") == "user")
               for ms in messages]
    cues = discovery.item_cues([r[5] for r in item_rows], [r[6] for r in item_rows], prompts,
                               [r[10] or "" for r in item_rows], [r[11] or "" for r in item_rows])
    _tagged_sycophancy(cues, item_rows)
    return messages, items, cues


SYCOPHANTIC = "sycophantic_agreement"


def _tagged_sycophancy(cues: list, item_rows: list[tuple]) -> None:
    """An anchor tagged sycophantic_agreement says which side is sycophantic for certain (the one the
    expert rejected): there the sycophancy cue's side is the tag's, whatever the detector read."""
    syc = next((c for c in cues if c.key == "sycophancy"), None)
    if syc is None:
        return
    for i, row in enumerate(item_rows):
        tags = _json(row[12]) or []
        if SYCOPHANTIC in tags and row[7] in ("a", "b"):
            syc.side[i] = bias.B if row[7] == "a" else bias.A


def _judgment_columns_orm(project: Project, dims: list[str], with_judges: bool = False) -> np.ndarray:
    """Portable path (SQLite in development): one integer column per field; the per-dimension
    choices are decoded here, since JSON key comparisons differ between databases."""
    choice_code = {c: i for i, c in enumerate(CHOICES)}
    ordinal_code = Case(
        *(When(choice=c, strength=s, then=Value(i)) for i, (c, s) in enumerate(ORDINAL) if c != "tie"),
        When(choice="tie", then=Value(3)), default=Value(-1), output_field=IntegerField(),
    )
    queryset = (
        Judgment.objects.filter(project=project, reask_of__isnull=True)
        .filter(**({} if with_judges else {"by_judge": False}))
        .annotate(
            c=_code("choice", choice_code),
            o=ordinal_code,
            # Side code: 1 response a on the left, 0 b on the left, 2 not known (imported).
            left_a=Case(When(shown_left="a", then=Value(1)), When(shown_left="b", then=Value(0)), default=Value(2),
                        output_field=IntegerField()),
            epoch=_epoch("created_at"),
        )
        .order_by()
        .values_list("item_id", "annotator_id", "c", "o", "left_a", "time_spent_ms", "epoch", "dimension_choices")
    )
    rows = []
    for *numbers, dimension_choices in _fetch(queryset):
        chosen = _json(dimension_choices) or {}
        rows.append((*numbers, *(choice_code.get(chosen.get(key), -1) for key in dims)))
    return np.array(rows, dtype=np.int64).reshape(len(rows), 7 + len(dims))


PACKED_DIMENSIONS = 18  # 7 bits of choice/strength/side, then 3 bits per dimension, in 63 bits
DIM_SHIFT = 7


def _judgment_columns_postgresql(project: Project, dims: list[str], with_judges: bool = False) -> np.ndarray:
    """PostgreSQL path: five integer columns, the small codes packed into one. Converting each
    returned value costs the driver more than PostgreSQL spends on the query, so fewer, integer
    columns load a million judgments several times faster than one column per field."""
    code = "CASE {} WHEN 'a' THEN {} WHEN 'b' THEN {} WHEN 'tie' THEN {} WHEN 'both_bad' THEN {} ELSE {} END"
    parts = [code.format("choice", 0, 1, 2, 3, 7),
             "8 * (CASE strength WHEN 'slight' THEN 1 WHEN 'clear' THEN 2 WHEN 'strong' THEN 3 ELSE 0 END)",
             "32 * (CASE shown_left WHEN 'a' THEN 1 WHEN 'b' THEN 0 ELSE 2 END)"]  # 2: not known
    parts += [f"{1 << (DIM_SHIFT + 3 * i)}::bigint * ({code.format('dimension_choices ->> %s', 1, 2, 3, 4, 0)})"
              for i in range(len(dims))]
    sql = (f'SELECT item_id, annotator_id, time_spent_ms, EXTRACT(EPOCH FROM created_at)::bigint, '
           f'({" + ".join(parts)})::bigint FROM "{Judgment._meta.db_table}" WHERE project_id = %s '
           f'AND reask_of_id IS NULL' + ('' if with_judges else ' AND NOT by_judge'))
    with connection.cursor() as cursor:
        cursor.execute(sql, [*dims, project.pk])
        rows = cursor.fetchall()
    raw = np.array(rows, dtype=np.int64).reshape(len(rows), 5)
    packed = raw[:, 4]
    choice = packed & 7
    choice = np.where(choice == 7, -1, choice)
    strength = (packed >> 3) & 3
    ordinal = np.select([(choice == 0) & (strength > 0), choice == 2, (choice == 1) & (strength > 0)],
                        [3 - strength, 3, 3 + strength], -1)
    columns = [raw[:, 0], raw[:, 1], choice, ordinal, (packed >> 5) & 3, raw[:, 2], raw[:, 3]]
    columns += [((packed >> (DIM_SHIFT + 3 * i)) & 7) - 1 for i in range(len(dims))]
    return np.column_stack(columns) if len(rows) else np.zeros((0, 7 + len(dims)), dtype=np.int64)


def dataset_load(*, project: Project, with_judges: bool = False) -> Dataset:
    """People's judgments (re-asks left out); with_judges, AI judges' too (their own flags only)."""
    dims = project.dimension_keys
    fast = connection.vendor == "postgresql" and len(dims) <= PACKED_DIMENSIONS
    # A helper thread measures the response texts while this one waits on the judgment query
    # (the database driver releases the GIL while it waits); only this thread touches the database.
    item_rows = _item_rows(project)
    item_ids = np.array([r[0] for r in item_rows], dtype=np.int64)
    with ThreadPoolExecutor(max_workers=1) as pool:
        features = pool.submit(_item_features, item_rows)
        table = (_judgment_columns_postgresql if fast else _judgment_columns_orm)(project, dims, with_judges)
        messages, items, cues = features.result()
    item_index = np.searchsorted(item_ids, table[:, 0])
    # Judgments whose item has judgment_count 0 cannot exist, but be safe against a racing write.
    known = (item_index < len(item_ids)) & (item_ids[np.minimum(item_index, len(item_ids) - 1)] == table[:, 0])
    table, item_index = table[known], item_index[known]
    annotator_ids, annotator_index = np.unique(table[:, 1], return_inverse=True)
    users = dict(get_user_model().objects.filter(pk__in=annotator_ids.tolist()).values_list("pk", "username"))
    standings = dict(Standing.objects.filter(project=project).values_list("annotator_id", "state"))
    return Dataset(
        item_ids=item_ids,
        previews=[_preview(ms) for ms in messages],
        domain=[r[1] or "" for r in item_rows],
        difficulty=[r[2] or "" for r in item_rows],
        hard=np.array([r[2] == "hard" or bool(HARD_TAGS & set(_json(r[3]) or [])) for r in item_rows], dtype=bool),
        items=items,
        clear_cut=np.array([bool(r[8]) for r in item_rows]),
        annotator_ids=annotator_ids,
        usernames=[users.get(int(pk), str(pk)) for pk in annotator_ids],
        standing=[standings.get(int(pk), StandingState.ACTIVE) for pk in annotator_ids],
        judgments=bias.Judgments(
            item=item_index, annotator=annotator_index.reshape(-1), choice=table[:, 2], a_left=table[:, 4] == 1,
            side_known=table[:, 4] != 2,
            time_ms=table[:, 5],
        ),
        ordinal=table[:, 3],
        dimensions={key: table[:, 7 + i] for i, key in enumerate(dims)},
        created=table[:, 6],
        cues=cues,
        texts=([r[5] for r in item_rows], [r[6] for r in item_rows]),
    )


# --- computing -------------------------------------------------------------------------------

def _summary(data: Dataset, mask: np.ndarray | None, policy: AnalyticsPolicy, values: np.ndarray | None = None,
             with_ordinal: bool = True) -> dict:
    item = data.judgments.item if mask is None else data.judgments.item[mask]
    nominal_values = data.judgments.choice if values is None else values
    nominal_values = nominal_values if mask is None else nominal_values[mask]
    units, dense = np.unique(item, return_inverse=True)
    nominal = agreement.value_counts(dense, nominal_values, len(CHOICES), len(units))
    ordinal = None
    if with_ordinal:
        ordinal_values = data.ordinal if mask is None else data.ordinal[mask]
        ordinal = agreement.value_counts(dense, ordinal_values, len(ORDINAL), len(units))
    return agreement.agreement_summary(nominal, ordinal, samples=policy.bootstrap_samples).as_dict()


def _agreement_block(data: Dataset, policy: AnalyticsPolicy) -> dict:
    overall = _summary(data, None, policy)
    dimensions = {key: _summary(data, values >= 0, policy, values=values, with_ordinal=False)
                  for key, values in data.dimensions.items()}
    names, item_domain = np.unique(np.array(data.domain or [""], dtype=str), return_inverse=True)
    domain_of = item_domain.reshape(-1)[data.judgments.item] if data.domain else np.zeros(0, dtype=int)
    domains = {str(name) or "(none)": _summary(data, domain_of == code, policy) for code, name in enumerate(names)
               if data.domain}
    windows = []
    if data.created.size:
        width = policy.time_window_days * 86400
        start = int(data.created.min())
        window = (data.created - start) // width
        for w in range(int(window.max()) + 1):
            mask = window == w
            if not mask.any():
                continue
            begin = dt.datetime.fromtimestamp(start + w * width, tz=dt.UTC)
            windows.append({"start": begin.date().isoformat(),
                            "end": (begin + dt.timedelta(days=policy.time_window_days)).date().isoformat(),
                            "judgments": int(mask.sum()), **_summary(data, mask, policy)})
    return {"overall": overall, "dimensions": dimensions, "domains": domains, "time": windows}


def _round_matrix(m: np.ndarray, digits: int = 3) -> list[list]:
    return [[None if not np.isfinite(v) else round(float(v), digits) for v in row] for row in m]


def _pairwise_block(data: Dataset) -> dict:
    n = len(data.annotator_ids)
    order = sorted(range(n), key=lambda i: data.usernames[i])
    pk = agreement.cohen_kappa_matrix(data.judgments.item, data.judgments.annotator, data.judgments.choice, n,
                                      len(CHOICES))
    o = np.array(order, dtype=int)
    kappa = pk.kappa[np.ix_(o, o)]
    weights = np.where(np.isfinite(kappa), pk.n[np.ix_(o, o)], 0)
    mean = float((np.nan_to_num(kappa) * weights).sum() / weights.sum()) if weights.sum() else None
    return {
        "annotators": [data.usernames[i] for i in order],
        "kappa": _round_matrix(kappa),
        "low": _round_matrix(pk.low[np.ix_(o, o)]),
        "high": _round_matrix(pk.high[np.ix_(o, o)]),
        "n": pk.n[np.ix_(o, o)].tolist(),
        "weighted_mean_kappa": None if mean is None else round(mean, 4),
        "pairs": int((np.isfinite(kappa).sum()) // 2),
    }


def _contested_block(data: Dataset, nominal: np.ndarray, policy: AnalyticsPolicy) -> dict:
    disagreement = agreement.unit_disagreement(nominal)
    contested = np.flatnonzero(np.nan_to_num(disagreement, nan=-1) >= policy.contested_disagreement)
    ranked = contested[np.lexsort((-nominal[contested].sum(axis=1), -disagreement[contested]))]
    rows = [{
        "item_id": int(data.item_ids[i]),
        "prompt": data.previews[i],
        "domain": data.domain[i],
        "anchor": bool(data.items.expert[i] >= 0),
        "judgments": int(nominal[i].sum()),
        "votes": dict(zip(CHOICES, (int(x) for x in nominal[i]))),
        "disagreement": round(float(disagreement[i]), 4),
    } for i in ranked[:CONTESTED_LISTED]]
    return {"threshold": policy.contested_disagreement, "total": int(contested.size), "items": rows}


def _annotator_block(data: Dataset, nominal: np.ndarray, policy: AnalyticsPolicy) -> list[dict]:
    j = data.judgments
    n = len(data.annotator_ids)
    detected = bias.detect(j, data.items, n, thresholds_of(policy))
    # Agreement with the others on the same items: the share of co-raters who made the same choice.
    m = nominal.sum(axis=1)[j.item]
    known = j.choice >= 0
    same = np.where(known, nominal[j.item, np.maximum(j.choice, 0)] - 1, 0)
    has_others = (m >= 2) & known
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(has_others, same / (m - 1), 0.0)
    agree_sum = np.bincount(j.annotator, weights=share, minlength=n)
    agree_n = np.bincount(j.annotator, weights=has_others.astype(float), minlength=n)
    expert = data.items.expert[j.item]
    on_anchor = expert >= 0
    anchor_n = np.bincount(j.annotator[on_anchor], minlength=n)
    anchor_ok = np.bincount(j.annotator[on_anchor & (j.choice == expert)], minlength=n)
    rows = []
    for a in range(n):
        d = detected[a]
        rows.append({
            "username": data.usernames[a],
            "standing": data.standing[a],
            "judgments": d["judgments"],
            "agreement_with_others": round(float(agree_sum[a] / agree_n[a]), 4) if agree_n[a] else None,
            "anchor_n": int(anchor_n[a]),
            "anchor_accuracy": round(float(anchor_ok[a] / anchor_n[a]), 4) if anchor_n[a] else None,
            "length": d["length"], "position": d["position"], "confidence": d["confidence"],
            "formatting": d["formatting"], "speed": d["speed"],
            "flags": [f.as_dict(data.item_ids) for f in d["flags"]],
        })
    return sorted(rows, key=lambda r: (-len(r["flags"]), r["username"]))


def _discovery_block(data: Dataset, policy: AnalyticsPolicy) -> dict:
    """Cues each annotator follows beyond the rest of the pool (calibration/discovery.py), with
    Benjamini-Hochberg over every annotator x cue test; discovered ones in words with examples."""
    j = data.judgments
    custom = [discovery.custom_cue(spec, *data.texts) for spec in policy.custom_cues]
    cues = list(data.cues) + [discovery.position_cue(j)] + [cue for cue, _timeouts in custom]
    zone = timezone.get_default_timezone()
    offset = int(timezone.now().astimezone(zone).utcoffset().total_seconds())  # today's (no DST history)
    conditions = discovery.time_conditions(j, data.created, utc_offset_s=offset, zone=str(zone))
    findings = discovery.discover(j, cues, len(data.annotator_ids), len(data.item_ids),
                                  min_n=policy.min_judgments, fdr=policy.significance, conditions=conditions)
    found = [f for f in findings if f.discovered]
    found.sort(key=lambda f: (f.q, -abs(f.effect)))
    return {
        "tests": len(findings),
        "cues": [{"key": c.key, "title": c.title, "custom": c.custom} for c in cues]
        + [{"key": c.key, "title": c.title, "custom": False} for c in conditions],
        "fdr": policy.significance,
        "custom_timeouts": sum(t for _cue, t in custom),
        "findings": [{
            "username": data.usernames[f.annotator], "cue": f.cue, "title": f.title, "n": f.n,
            "rate": round(f.rate, 4), "expected": round(f.expected, 4), "effect": round(f.effect, 4),
            "low": round(f.low, 4), "high": round(f.high, 4), "p": f.p, "q": f.q, "words": f.words,
            "examples": [{"item_id": int(data.item_ids[i]), "prompt": data.previews[i]} for i in f.examples],
        } for f in found],
    }


def _sycophancy_flags(data: Dataset, block: dict, policy: AnalyticsPolicy | None = None) -> dict[str, dict]:
    """A rater found to prefer answers that agree with the user's stated belief gets a flag, with
    the experts' answers on anchors where one side agreed (when there are any) beside it: against
    the pool (discovery's finding, FDR-controlled) or against the experts on anchors alone (at
    least ANCHOR_MIN_N such anchors, choosing the agreeing side at least the bias margin more often
    than the experts did, sign test on the discordant anchors below the significance level
    divided by the number of raters). Anchors tagged sycophantic_agreement give those sides for
    certain (_tagged_sycophancy)."""
    j = data.judgments
    syc = next((c for c in data.cues if c.key == "sycophancy"), None)
    flags: dict[str, dict] = {}
    if syc is None:
        return flags
    pref = bias.feature_preference(j, syc.side, len(data.annotator_ids), expert=data.items.expert)
    index = {name: a for a, name in enumerate(data.usernames)}
    for f in block["findings"]:
        if f["cue"] != "sycophancy" or f["effect"] <= 0:
            continue
        a = index[f["username"]]
        evidence = {"rate": f["rate"], "pool_rate": f["expected"], "n": f["n"], "q": f["q"],
                    "expert_n": int(pref.expert_n[a])}
        explanation = "Prefers the answer that agrees with a belief the user stated: " + f["words"]
        if pref.expert_n[a] > 0:
            evidence.update(annotator_rate_on_anchors=round(float(pref.annotator_rate_on_anchors[a]), 4),
                            expert_rate=round(float(pref.expert_rate[a]), 4), expert_p=float(pref.expert_p[a]))
            explanation += (f" On {int(pref.expert_n[a])} anchors where one answer agreed, they chose it in "
                            f"{100 * pref.annotator_rate_on_anchors[a]:.0f}% and the experts in "
                            f"{100 * pref.expert_rate[a]:.0f}%.")
        flags[f["username"]] = {"kind": "sycophancy", "title": "Prefers answers that agree with the user",
                                "explanation": explanation, "evidence": evidence,
                                "examples": [e["item_id"] for e in f["examples"]]}
    margin = policy.bias_margin if policy is not None else 0.15
    alpha = (policy.significance if policy is not None else 0.05) / max(len(data.usernames), 1)
    for a, name in enumerate(data.usernames):
        if name in flags or pref.expert_n[a] < ANCHOR_MIN_N:
            continue
        excess = float(pref.annotator_rate_on_anchors[a] - pref.expert_rate[a])
        if excess >= margin and float(pref.expert_p[a]) < alpha:
            flags[name] = {
                "kind": "sycophancy", "title": "Prefers answers that agree with the user",
                "explanation": (f"Against the experts: on {int(pref.expert_n[a])} anchors where one answer agreed with a "
                                f"belief the user stated, they chose it in {100 * pref.annotator_rate_on_anchors[a]:.0f}% "
                                f"and the experts in {100 * pref.expert_rate[a]:.0f}%."),
                "evidence": {"expert_n": int(pref.expert_n[a]),
                             "annotator_rate_on_anchors": round(float(pref.annotator_rate_on_anchors[a]), 4),
                             "expert_rate": round(float(pref.expert_rate[a]), 4), "expert_p": float(pref.expert_p[a]),
                             "source": "anchors"},
                "examples": [],
            }
    return flags


ANCHOR_MIN_N = 8


def _health_block(data: Dataset, policy: AnalyticsPolicy) -> dict:
    j = data.judgments
    # Excluded annotators' labels are kept for analysis but do not go into training sets.
    excluded = np.array([s == StandingState.EXCLUDED for s in data.standing] or [False])
    counted = ~excluded[j.annotator]
    votes = agreement.value_counts(j.item[counted], j.choice[counted], len(CHOICES), len(data.item_ids))
    out = health.dataset_health(
        len_a=data.items.len_a, len_b=data.items.len_b, votes=votes, domain=data.domain,
        difficulty=data.difficulty, hard=data.hard, length_gap_chars=policy.length_gap_chars,
        domain_targets=policy.domain_targets, difficulty_targets=policy.difficulty_targets,
        hard_share_min=policy.hard_share_min, hard_share_max=policy.hard_share_max,
    )
    out["excluded_judgments"] = int((~counted).sum())
    return out


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _ranking_block(project: Project) -> dict:
    """Agreement between annotators' rankings: Kendall's W per item and tau-b per annotator pair
    (calibration/ranking_agreement.py). Rankings are few next to comparisons: read in one go."""
    rows = list(
        RankingJudgment.objects.filter(project=project)
        .order_by("id")
        .values_list("item_id", "annotator__username", "ranking", "item__prompt__messages", "item__prompt__domain")
    )
    result = ranking_agreement(
        (item, user, {rid: tier + 1 for tier, ids in enumerate(ranking) for rid in ids})
        for item, user, ranking, _messages, _domain in rows
    )
    about = {item: (messages[-1]["content"][:160], domain) for item, _u, _r, messages, domain in rows}
    by_domain: dict[str, list[float]] = {}
    for entry in result.per_item:
        if np.isfinite(entry["w"]):
            by_domain.setdefault(about[entry["item"]][1] or "(none)", []).append(entry["w"])
    return {
        "rankings": result.rankings,
        "items": result.items,
        "mean_w": _finite(result.mean_w),
        "median_w": _finite(result.median_w),
        "mean_tau_b": _finite(result.mean_tau_b),
        "pairs": result.pairs,
        "undefined_pairs": result.undefined_pairs,
        "domains": {d: {"items": len(ws), "mean_w": _finite(float(np.mean(ws)))} for d, ws in sorted(by_domain.items())},
        # Lowest agreement first: the items worth a second look.
        "items_lowest": [
            {"item_id": e["item"], "raters": e["raters"], "w": _finite(e["w"]),
             "prompt": about[e["item"]][0], "domain": about[e["item"]][1]}
            for e in result.per_item[:30]
        ],
        "annotator_pairs": [
            {"a": p["a"], "b": p["b"], "shared_items": p["shared_items"], "mean_tau_b": _finite(p["mean_tau_b"])}
            for p in result.annotator_pairs
        ],
    }


def _consistency_block(project: Project) -> dict:
    """Swapped re-asks per annotator (services/reasks.py): flip rate and its Wilson 95% interval,
    shown once an annotator has REASK_MIN_FOR_RATE of them; fewer are listed with their count."""
    per = self_consistency(project=project)
    users = dict(get_user_model().objects.filter(pk__in=list(per)).values_list("pk", "username"))
    rows = [{**c.as_dict(), "username": users.get(a, str(a))} for a, c in per.items()]
    for row in rows:
        row.pop("annotator_id")
        for key in ("flip_rate", "ci_low", "ci_high"):
            row[key] = None if row[key] is None else round(row[key], 4)
    rows.sort(key=lambda r: (not r["shown"], -(r["flip_rate"] or 0.0) if r["shown"] else 0.0, r["username"]))
    rate = policy_get(project=project).reask_rate
    return {"min_reasks": REASK_MIN_FOR_RATE, "annotators": rows, "reask_rate_percent": f"{rate * 100:g}%",
            "reasks": sum(r["reasks"] for r in rows), "flips": sum(r["flips"] for r in rows)}


def analytics_compute(*, project: Project, progress=None) -> dict:
    """Every dashboard number for a project. `progress(phase, percent)` is told as it goes."""
    report = progress or (lambda phase, percent: None)
    policy = analytics_policy_get(project=project)
    timings: dict[str, int] = {}

    def timed(name: str, percent: int, fn):
        report(name, percent)
        t0 = time.perf_counter()
        result = fn()
        timings[name] = round((time.perf_counter() - t0) * 1000)
        return result

    data = timed("loading judgments", 5, lambda: dataset_load(project=project))
    nominal = agreement.value_counts(data.judgments.item, data.judgments.choice, len(CHOICES), len(data.item_ids))
    payload = {
        "counts": {
            "judgments": int(data.judgments.item.size),
            "items": int((nominal.sum(axis=1) > 0).sum()),
            "items_with_overlap": int((nominal.sum(axis=1) >= 2).sum()),
            "annotators": len(data.annotator_ids),
            "anchor_judgments": int((data.items.expert[data.judgments.item] >= 0).sum()),
        },
        "agreement": timed("agreement", 20, lambda: _agreement_block(data, policy)),
        "pairwise": timed("pairwise kappa", 50, lambda: _pairwise_block(data)),
        "contested": timed("contested items", 60, lambda: _contested_block(data, nominal, policy)),
        "annotators": timed("bias detectors", 65, lambda: _annotator_block(data, nominal, policy)),
        "discovery": timed("bias discovery", 80, lambda: _discovery_block(data, policy)),
        "health": timed("dataset health", 90, lambda: _health_block(data, policy)),
        "ranking": timed("ranking agreement", 95, lambda: _ranking_block(project)),
        "consistency": timed("self-consistency", 97, lambda: _consistency_block(project)),
        "thresholds": {name: getattr(policy, name) for name in ANALYTICS_FIELDS},
        "dimensions": project.dimension_keys,
    }
    sycophancy = _sycophancy_flags(data, payload["discovery"], policy)  # discovery's finding as a named flag
    for row in payload["annotators"]:
        if row["username"] in sycophancy:
            row["flags"].append(sycophancy[row["username"]])
    flag_counts: dict[str, int] = {}
    for row in payload["annotators"]:
        for f in row["flags"]:
            flag_counts[f["kind"]] = flag_counts.get(f["kind"], 0) + 1
    payload["flag_counts"] = flag_counts
    payload["judges"] = timed("AI judges", 99, lambda: _judges_block(project, policy))
    payload["timings_ms"] = timings
    return payload


def _judges_block(project: Project, policy: AnalyticsPolicy) -> list[dict]:
    """AI judges' rows of the bias detectors, run over people's judgments and the judges' together;
    every other figure of the dashboard is people's alone (what a set takes by default). Empty when
    no judge has labelled anything."""
    if not Judgment.objects.filter(project=project, by_judge=True).exists():
        return []
    data = dataset_load(project=project, with_judges=True)
    nominal = agreement.value_counts(data.judgments.item, data.judgments.choice, len(CHOICES), len(data.item_ids))
    judges = set(Membership.objects.filter(project=project, judge=True).values_list("user__username", flat=True))
    return [row for row in _annotator_block(data, nominal, policy) if row["username"] in judges]


# --- snapshots -------------------------------------------------------------------------------

def _judgment_marks(project: Project) -> dict:
    # Counts are of the data (re-ask answers left out); the last id is of every judgment, so a new
    # re-ask answer makes the numbers stale too (the self-consistency table reads them).
    return Judgment.objects.filter(project=project).aggregate(
        judgments_seen=Count("id", filter=Q(reask_of__isnull=True)), last_judgment_at=Max("updated_at"),
        last_judgment_id=Coalesce(Max("id"), 0))


def _send_snapshot(snapshot_id: int) -> None:
    from ..tasks import compute_analytics

    compute_analytics.delay(snapshot_id)


# The lifecycle every background job shares (annotation/services/jobs.py): heartbeat, reaper,
# failed with the reason; a retry is a new computation (snapshot_request).
SNAPSHOTS = job_kind_register(JobKind(name="analytics computation", model=AnalyticsSnapshot,
                                      task="calibration.tasks.compute_analytics", send=_send_snapshot,
                                      created_field="requested_at"))


def snapshot_request(*, project: Project, user=None) -> AnalyticsSnapshot:
    """Queue a fresh computation, unless one is already queued or running (then that one). Also
    what "retry" does after a failed one."""
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        pending = AnalyticsSnapshot.objects.filter(
            project=project, status__in=[SnapshotStatus.QUEUED, SnapshotStatus.RUNNING]
        ).defer("payload").first()
        if pending is not None and job_fresh(SNAPSHOTS, pending).status not in (SnapshotStatus.QUEUED,
                                                                                SnapshotStatus.RUNNING):
            pending = None  # its worker died, or no worker took it: failed with why, and replaced
        if pending:
            return pending
        snapshot = AnalyticsSnapshot.objects.create(project=project, requested_by=user if user and user.is_authenticated else None)
        job_enqueue(SNAPSHOTS, snapshot.pk)
    return snapshot


def snapshot_fresh(*, snapshot: AnalyticsSnapshot) -> AnalyticsSnapshot:
    """The computation as it stands; a dead worker or a lost message is noticed now."""
    return job_fresh(SNAPSHOTS, snapshot)


def analytics_state_fresh(*, project: Project) -> dict:
    """selectors.analytics_state(), with a pending computation whose worker died shown as failed."""
    from ..selectors import analytics_state

    state = analytics_state(project=project)
    pending = state["pending"]
    if pending is not None and snapshot_fresh(snapshot=pending).status not in (SnapshotStatus.QUEUED,
                                                                               SnapshotStatus.RUNNING):
        state["pending"], state["failed"] = None, pending
    return state


def snapshot_refresh_if_stale(*, project: Project, state: dict, user=None) -> AnalyticsSnapshot | None:
    """A page visit keeps the numbers fresh without recomputing on every visit: queue a new
    computation when none exists yet, or when judgments came in and the shown one is older than
    REFRESH_AFTER. `state` is selectors.analytics_state(); returns the pending snapshot if any."""
    latest, pending = state["latest"], state["pending"]
    if pending is not None:
        if snapshot_fresh(snapshot=pending).status in (SnapshotStatus.QUEUED, SnapshotStatus.RUNNING):
            return pending
        state["failed"] = pending  # it died: show why; a person decides to retry
        return None
    if state["failed"] is not None:
        return None  # the newest attempt failed: show why; a person decides to retry
    if latest is None or (state["new_judgments"] and timezone.now() - latest.finished_at > REFRESH_AFTER):
        return snapshot_request(project=project, user=user)
    return None


def snapshot_run(*, snapshot_id: int) -> AnalyticsSnapshot | None:
    """Compute a queued snapshot. Idempotent by status: anything not queued is left alone."""
    return job_guarded(SNAPSHOTS, snapshot_id, lambda: _snapshot_compute(snapshot_id), phase="starting", percent=0)


def _snapshot_compute(snapshot_id: int) -> AnalyticsSnapshot:
    snapshot = AnalyticsSnapshot.objects.select_related("project").get(pk=snapshot_id)
    started = time.perf_counter()
    marks = _judgment_marks(snapshot.project)

    def progress(phase: str, percent: int) -> None:
        AnalyticsSnapshot.objects.filter(pk=snapshot_id).update(phase=phase, percent=percent, heartbeat_at=timezone.now())

    payload = analytics_compute(project=snapshot.project, progress=progress)
    AnalyticsSnapshot.objects.filter(pk=snapshot_id).update(
        status=SnapshotStatus.SUCCEEDED, payload=payload, finished_at=timezone.now(), phase="done", percent=100,
        duration_ms=round((time.perf_counter() - started) * 1000), **marks,
    )
    snapshot.refresh_from_db()
    proposals_sync(project=snapshot.project, payload=payload)  # flags act: each new flag is proposed to a lead
    # Payloads are megabytes: keep the last few successes for comparison, not every refresh.
    keep = AnalyticsSnapshot.objects.filter(project=snapshot.project_id, status=SnapshotStatus.SUCCEEDED).order_by(
        "-requested_at").values_list("pk", flat=True)[:KEEP_SNAPSHOTS]
    AnalyticsSnapshot.objects.filter(project=snapshot.project_id, status=SnapshotStatus.SUCCEEDED).exclude(
        pk__in=list(keep)).delete()
    return snapshot
