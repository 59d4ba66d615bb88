from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from partners import access
from partners.models import Partner
from tests import factories


@pytest.mark.django_db
def test_migrate_creates_the_three_roles() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= set(access.ROLE_NAMES)


@pytest.mark.django_db
def test_auditor_can_read_and_export_but_not_change() -> None:
    user = factories.auditor()
    assert user.has_perm("partners.view_partner")
    assert user.has_perm("partners.export_evidence")
    assert not user.has_perm("partners.change_endpoint")
    assert not user.has_perm("partners.import_registry")


@pytest.mark.django_db
def test_qa_lead_can_import_and_manage_endpoints() -> None:
    user = factories.qa_lead()
    assert access.can_import_registry(user)
    assert access.can_manage_endpoints(user)


def test_membership_restricts_even_a_user_with_a_staff_role(partner_a: Partner) -> None:
    user = factories.partner_user(partner_a)
    user.groups.add(Group.objects.get(name=access.QA_LEAD))
    assert not access.sees_all_partners(user)
    assert not access.can_import_registry(user)


def test_inactive_user_sees_nothing(partner_a: Partner) -> None:
    user = factories.partner_user(partner_a)
    user.is_active = False
    assert not access.partners_visible_to(user).exists()
