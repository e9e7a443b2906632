"""The runs form's backbone picker: the model directories under the configured roots (a
config.json inside, checkpoints included, unreadable configs and roots survived), offered to
engineers only; leads see the page without it."""
from __future__ import annotations

import json

import pytest
from django.test import Client

from annotation.models import Role
from tests.factories import ProjectFactory, member
from training.backbones import model_dirs

pytestmark = pytest.mark.django_db


def _model(path, **config):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_model_dirs_finds_models_and_checkpoints_and_survives_bad_files(tmp_path, settings):
    encoder = _model(tmp_path / "a" / "encoder", model_type="bert", architectures=["BertModel"])
    policy = _model(tmp_path / "b" / "policy", model_type="gpt2", architectures=["GPT2LMHeadModel"])
    checkpoint = _model(policy / "checkpoint-10", model_type="gpt2", architectures=["GPT2LMHeadModel"])
    broken = tmp_path / "c" / "broken"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")
    (tmp_path / "d" / "empty").mkdir(parents=True)  # no config.json: not a model
    too_deep = _model(tmp_path / "e" / "1" / "2" / "3" / "deep", model_type="bert")
    settings.MODEL_ROOTS, settings.TRAINING_ROOT = [tmp_path, tmp_path / "missing"], tmp_path / "nowhere"
    found = {m.path: m for m in model_dirs()}
    assert {str(encoder), str(policy), str(checkpoint), str(broken)} <= set(found)
    assert str(too_deep) not in found and str(tmp_path / "d" / "empty") not in found
    assert found[str(policy)].causal_lm and not found[str(encoder)].causal_lm
    assert found[str(broken)].model_type == "" and found[str(encoder)].model_type == "bert"
    assert any(m.source == "bundled" for m in found.values())  # the MiniLM package
    assert len(model_dirs(limit=2)) == 2


def test_the_runs_page_lists_them_for_engineers_with_help_text_visible(tmp_path, settings):
    _model(tmp_path / "policy", model_type="gpt2", architectures=["GPT2LMHeadModel"])
    settings.MODEL_ROOTS = [tmp_path]
    project = ProjectFactory()
    engineer = Client()
    engineer.force_login(member(project, Role.ENGINEER))
    html = engineer.get(f"/p/{project.slug}/runs/").content.decode()
    assert f'<option value="{tmp_path / "policy"}">gpt2' in html  # in both datalists
    assert html.count(f'value="{tmp_path / "policy"}"') == 2
    assert 'list="model-dirs"' in html and 'list="causal-dirs"' in html and "Use as backbone" in html
    assert 'class="help"' in html and 'label title=' not in html  # help under each field, not in a tooltip
    lead = Client()
    lead.force_login(member(project, Role.LEAD))
    lead_html = lead.get(f"/p/{project.slug}/runs/").content.decode()
    assert "model-dir-list" not in lead_html and str(tmp_path) not in lead_html
