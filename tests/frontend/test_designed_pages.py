"""Designed-data pages seen by the people who use them: untrusted text inert, the adversarial page
shows both lengths, the dataset view counts longer negatives, a refused submit keeps its text, and
the analytics page shows ranking agreement equal to scipy's on generated rankings."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.test import Client
from scipy import stats

from annotation.models import ItemKind, Role
from annotation.services.negatives import NegativeInput, negative_submit
from annotation.services.rankings import RankingInput, ranking_submit
from calibration.services.analytics import analytics_compute
from annotation.services.queue import queue_next
from tests.factories import (
    ProjectFactory, adversarial_line, bad_case_line, import_lines, member, ranking_line,
)

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _next(client, project) -> str:
    response = client.post(f"/p/{project.slug}/label/next/")
    assert response.status_code == 200
    return response.content.decode()


def test_rewrite_page_keeps_model_text_inert_and_a_refused_submit_keeps_every_field():
    project = ProjectFactory()
    import_lines(project, [bad_case_line("Hi", '<img src=x onerror="alert(1)"> bad answer')])
    expert = member(project)
    client = _client(expert)
    html = _next(client, project)
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; bad answer" in html and "<img src=x" not in html
    assignment = queue_next(project=project, annotator=expert)
    response = client.post(f"/p/{project.slug}/label/{assignment.handle}/rewrite/", {
        "client_token": str(uuid.uuid4()), "text": "A much better <answer>.", "flaws": ["unsafe", "too_long"],
        "rationale": "short",
    })
    assert response.status_code == 422
    body = response.content.decode()
    assert "A much better &lt;answer&gt;." in body and "Write at least" in body
    assert body.count("checked") == 2  # both flaws still ticked
    diff = client.post(f"/p/{project.slug}/label/{assignment.handle}/diff/", {"text": "good <answer>"}).content.decode()
    assert 'class="d-' in diff and "&lt;answer&gt;" in diff and "<answer>" not in diff


def test_adversarial_page_shows_both_lengths_and_the_dataset_view_counts_longer_negatives():
    project = ProjectFactory()
    import_lines(project, [adversarial_line("Q1?", "Short good."), adversarial_line("Q2?", "A fairly long good answer here.")])
    author, lead = member(project), member(project, Role.LEAD)
    html = _next(_client(author), project)
    assert 'id="good-length" data-length="11"' in html and "11 characters" in html
    for text in ("Short good, but longer and wrong.", "Wrong."):
        assignment = queue_next(project=project, annotator=author)
        negative_submit(assignment_id=assignment.pk, author=author, client_token=uuid.uuid4(),
                        data=NegativeInput(text=text, flaw_type="longer_but_wrong", rationale="Flaw declared here."))
    page = _client(lead).get(f"/p/{project.slug}/designed/").content.decode()
    assert "<b>1</b> of 2 adversarial negatives are longer than their good counterparts" in page


def test_analytics_page_shows_ranking_agreement_equal_to_scipy():
    rng = np.random.default_rng(5)
    project = ProjectFactory(overlap=4)
    import_lines(project, [ranking_line(f"Rank {i}", int(rng.integers(3, 7))) for i in range(6)])
    raters = [member(project, username=f"ranker{i}") for i in range(4)]
    by_item: dict[int, list[dict[int, int]]] = {}
    by_user_item: dict[tuple[str, int], dict[int, int]] = {}
    for user in raters:
        while (assignment := queue_next(project=project, annotator=user)) is not None:
            assert assignment.item.kind == ItemKind.RANKING
            k = len(assignment.shown_order)
            # Random tiers: a shuffled order cut at random places (ties included).
            perm = rng.permutation(k)
            cuts = sorted(set(rng.integers(1, k, size=int(rng.integers(1, k))).tolist()))
            tiers = [perm[a:b].tolist() for a, b in zip([0, *cuts], [*cuts, k])]
            order = ">".join("=".join("ABCDEFGH"[i] for i in tier) for tier in tiers)
            judgment, _ = ranking_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                                         data=RankingInput(order=order, rationale="Random but valid order."))
            ranks = judgment.ranks
            by_item.setdefault(judgment.item_id, []).append(ranks)
            by_user_item[(user.username, judgment.item_id)] = ranks

    # The oracle: W from scipy's tie-corrected Friedman statistic, tau-b from scipy.stats.kendalltau.
    ws = []
    for rankings in by_item.values():
        ids = sorted(rankings[0])
        matrix = np.array([[r[i] for i in ids] for r in rankings], dtype=float)
        m, n = matrix.shape
        if np.all(matrix == matrix[:, :1]):
            continue
        ws.append(stats.friedmanchisquare(*matrix.T).statistic / (m * (n - 1)))
    taus = []
    for a in range(len(raters)):
        for b in range(a + 1, len(raters)):
            for item in by_item:
                x, y = by_user_item[(raters[a].username, item)], by_user_item[(raters[b].username, item)]
                ids = sorted(x)
                tau = stats.kendalltau([x[i] for i in ids], [y[i] for i in ids]).statistic
                if np.isfinite(tau):
                    taus.append(tau)
    block = analytics_compute(project=project)["ranking"]
    assert block["rankings"] == 24 and block["items"] == 6
    assert block["mean_w"] == pytest.approx(float(np.mean(ws)), abs=1e-4)
    assert block["mean_tau_b"] == pytest.approx(float(np.mean(taus)), abs=1e-4)
    print(f"\nranking agreement: mean W {block['mean_w']} (scipy {np.mean(ws):.4f}), "
          f"mean tau-b {block['mean_tau_b']} (scipy {np.mean(taus):.4f})")

    from calibration.services.analytics import snapshot_request, snapshot_run

    snapshot_run(snapshot_id=snapshot_request(project=project).pk)
    page = _client(member(project, Role.LEAD)).get(f"/p/{project.slug}/analytics/?section=rankings").content.decode()
    assert 'id="ranking"' in page and f'<b id="ranking-mean-w">{block["mean_w"]}</b>' in page
    assert "ranker0" in page and "Kendall" in page


def test_a_lead_marks_a_response_bad_from_the_items_page_once():
    from annotation.models import BadCase, Item

    project = ProjectFactory()
    import_lines(project, [{"prompt": "Q <script>x</script>", "responses": ["<b>one</b>", "two"]}, ranking_line("R", 3)])
    lead = member(project, Role.LEAD)
    client = _client(lead)
    page = client.get(f"/p/{project.slug}/items/").content.decode()
    assert "&lt;b&gt;one&lt;/b&gt;" in page and "<b>one</b>" not in page and "&lt;script&gt;" in page
    assert page.count('class="mark-bad"') == 5  # two comparison responses, three ranked ones
    comparison = Item.objects.get(project=project, kind=ItemKind.COMPARISON)
    url = f"/p/{project.slug}/designed/bad-cases/"
    first = client.post(url, {"response": comparison.response_a_id}, HTTP_HX_REQUEST="true")
    again = client.post(url, {"response": comparison.response_a_id}, HTTP_HX_REQUEST="true")
    assert first.status_code == again.status_code == 200
    assert "rewrite task queued" in first.content.decode() and "already" in again.content.decode()
    assert BadCase.objects.get().sources == ["lead"] and BadCase.objects.get().reports == 2
    assert Item.objects.filter(project=project, kind=ItemKind.REWRITE).count() == 1
    page = client.get(f"/p/{project.slug}/items/?kind=comparison").content.decode()
    assert page.count('class="mark-bad"') == 1 and "Bad case" in page


def test_items_page_filters_pages_shows_the_whole_conversation_and_makes_anchors():
    from annotation.models import Item
    from tests.factories import make_anchor

    project = ProjectFactory()
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "First turn <i>here</i>"},
                    {"role": "assistant", "content": "An earlier answer"}, {"role": "user", "content": "Last turn"}]
    import_lines(project, [{"prompt": conversation, "responses": ["one", "two"], "domain": "Legal"}]
                 + [{"prompt": f"Q{i}", "responses": ["x", "y"], "domain": "general"} for i in range(30)]
                 + [ranking_line("R", 3)])
    anchor = make_anchor(project, domain="general")
    client = _client(member(project, Role.LEAD))
    first = client.get(f"/p/{project.slug}/items/").content.decode()
    assert first.count('class="card item-row"') == 25 and "Page 1 of 2" in first and "33 items" in first
    second = client.get(f"/p/{project.slug}/items/?page=2").content.decode()
    assert second.count('class="card item-row"') == 8
    legal = client.get(f"/p/{project.slug}/items/?domain=legal").content.decode()
    assert legal.count('class="card item-row"') == 1
    for turn in ("Be brief.", "First turn &lt;i&gt;here&lt;/i&gt;", "An earlier answer", "Last turn"):
        assert turn in legal  # every turn, as text
    assert "<i>here</i>" not in legal
    legal_item = Item.objects.get(project=project, prompt__domain="Legal")
    assert f'/anchors/new/?item={legal_item.pk}"' in legal
    anchors = client.get(f"/p/{project.slug}/items/?anchor=yes").content.decode()
    assert anchors.count('class="card item-row"') == 1 and f"/anchors/{anchor.pk}/" in anchors and "make-anchor" not in anchors
    rankings = client.get(f"/p/{project.slug}/items/?kind=ranking").content.decode()
    assert rankings.count('class="card item-row"') == 1 and "make-anchor" not in rankings  # anchors are comparisons
    # Filters survive paging; a nonsense filter value is ignored, not an error.
    filtered = client.get(f"/p/{project.slug}/items/?domain=general&kind=comparison").content.decode()
    assert "page=2" in filtered and "domain=general" in filtered.split('class="pager"')[1]
    assert client.get(f"/p/{project.slug}/items/?status=bogus&page=999").status_code == 200
    # Make anchor opens the anchor form for that item.
    form = client.get(f"/p/{project.slug}/anchors/new/?item={legal_item.pk}")
    assert form.status_code == 200 and "Last turn" in form.content.decode()
