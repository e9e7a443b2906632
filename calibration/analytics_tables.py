"""The dashboard's tables as rows, from a snapshot payload: one definition feeds the HTML tables'
CSV downloads and the API's. Pure: no Django."""
from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterable

STAT_KEYS = ("percent_agreement", "fleiss_kappa", "alpha_nominal", "alpha_ordinal")


def _stat_cells(summary: dict) -> list:
    cells = [summary.get("units"), summary.get("ratings")]
    for key in STAT_KEYS:
        est = summary.get(key) or {}
        cells += [est.get("value"), est.get("low"), est.get("high")]
    return cells


def agreement_rows(payload: dict) -> tuple[list[str], list[list]]:
    header = ["scope", "name", "start", "end", "units", "ratings"]
    for key in STAT_KEYS:
        header += [key, f"{key}_low", f"{key}_high"]
    block = payload.get("agreement", {})
    rows = [["overall", "", "", "", *_stat_cells(block.get("overall", {}))]]
    rows += [["dimension", k, "", "", *_stat_cells(v)] for k, v in block.get("dimensions", {}).items()]
    rows += [["domain", k, "", "", *_stat_cells(v)] for k, v in block.get("domains", {}).items()]
    rows += [["time", "", w["start"], w["end"], *_stat_cells(w)] for w in block.get("time", [])]
    return header, rows


def annotator_rows(payload: dict) -> tuple[list[str], list[list]]:
    header = ["annotator", "standing", "judgments", "agreement_with_others", "anchor_n", "anchor_accuracy",
              "longer_rate", "longer_pool_rate", "longer_expert_rate", "length_logit_coef", "left_rate", "left_p",
              "assertive_rate", "assertive_pool_rate", "list_rate", "list_pool_rate", "median_ms", "too_fast_share",
              "flags"]
    rows = []
    for r in payload.get("annotators", []):
        rows.append([
            r["username"], r["standing"], r["judgments"], r["agreement_with_others"], r["anchor_n"],
            r["anchor_accuracy"], r["length"]["rate"], r["length"]["pool_rate"], r["length"]["expert_rate"],
            r["length"]["logit_coef"], r["position"]["left_rate"], r["position"]["p"], r["confidence"]["rate"],
            r["confidence"]["pool_rate"], r["formatting"]["rate"], r["formatting"]["pool_rate"],
            r["speed"]["median_ms"], r["speed"]["too_fast_share"], " ".join(f["kind"] for f in r["flags"]),
        ])
    return header, rows


def flag_rows(payload: dict) -> tuple[list[str], list[list]]:
    header = ["annotator", "flag", "explanation", "example_items"]
    rows = [[r["username"], f["kind"], f["explanation"], " ".join(str(x) for x in f["examples"])]
            for r in payload.get("annotators", []) for f in r["flags"]]
    return header, rows


def pairwise_rows(payload: dict) -> tuple[list[str], list[list]]:
    p = payload.get("pairwise", {})
    names = p.get("annotators", [])
    rows = []
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            rows.append([a, names[j], p["n"][i][j], p["kappa"][i][j], p["low"][i][j], p["high"][i][j]])
    return ["annotator_a", "annotator_b", "shared_items", "cohen_kappa", "low", "high"], rows


def contested_rows(payload: dict) -> tuple[list[str], list[list]]:
    header = ["item_id", "domain", "anchor", "judgments", "a", "b", "tie", "both_bad", "disagreement", "prompt"]
    rows = [[c["item_id"], c["domain"], c["anchor"], c["judgments"], *c["votes"].values(), c["disagreement"],
             c["prompt"]] for c in payload.get("contested", {}).get("items", [])]
    return header, rows


def coverage_rows(payload: dict) -> tuple[list[str], list[list]]:
    h = payload.get("health", {})
    rows = [["domain", r["name"], r["items"], r["share"], r["target"]] for r in h.get("domains", [])]
    rows += [["difficulty", r["name"], r["items"], r["share"], r["target"]] for r in h.get("difficulty", [])]
    return ["kind", "name", "items", "share", "target"], rows


TABLES: dict[str, Callable[[dict], tuple[list[str], list[list]]]] = {
    "agreement": agreement_rows,
    "annotators": annotator_rows,
    "flags": flag_rows,
    "pairwise": pairwise_rows,
    "contested": contested_rows,
    "coverage": coverage_rows,
}


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection list


def _safe(cell):
    # Spreadsheet formula injection: prompts and usernames are user text. Spreadsheets skip
    # leading blanks (spaces, newlines, zero-width characters) before reading a formula, so the
    # first visible character counts, not the first character.
    if isinstance(cell, str) and (
        cell[:1] in FORMULA_STARTS or _skip_blanks(cell)[:1] in FORMULA_STARTS
    ):
        return "'" + cell
    return "" if cell is None else cell


def _skip_blanks(text: str) -> str:
    i = 0
    while i < len(text) and (text[i].isspace() or unicodedata.category(text[i]) in ("Cf", "Cc", "Zs")):
        i += 1
    return text[i:]


def to_csv(header: list[str], rows: Iterable[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_safe(c) for c in row])
    return out.getvalue()


def table_csv(table: str, payload: dict) -> str:
    """One dashboard table of a snapshot payload as CSV text (KeyError for an unknown table)."""
    header, rows = TABLES[table](payload)
    return to_csv(header, rows)
