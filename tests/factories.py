from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from partners import access
from partners.models import Membership, Partner

PASSWORD = "correct-horse-battery-staple"


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner
        django_get_or_create = ("external_id",)

    external_id = factory.Sequence(lambda n: f"p_{n + 100:03d}")
    name = factory.Sequence(lambda n: f"Partner {n}")
    modes = factory.LazyFunction(lambda: ["api"])
    security = factory.LazyFunction(lambda: ["oauth2"])
    contact_email = factory.LazyAttribute(lambda o: f"ops@{o.external_id}.example")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if extracted:
            self.groups.add(Group.objects.get(name=extracted))
        self.save()


def qa_lead(username: str = "qa") -> object:
    return UserFactory(username=username, role=access.QA_LEAD)


def auditor(username: str = "auditor") -> object:
    return UserFactory(username=username, role=access.AUDITOR)


def partner_user(partner: Partner, username: str | None = None) -> object:
    user = UserFactory(username=username or f"eng-{partner.external_id}", role=access.PARTNER_USER)
    Membership.objects.create(user=user, partner=partner)
    return user
