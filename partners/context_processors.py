from __future__ import annotations

from django.http import HttpRequest

from partners import access


def roles(request: HttpRequest) -> dict[str, object]:
    user = request.user
    return {
        "role": access.role_of(user),
        "can_import_registry": getattr(user, "is_authenticated", False)
        and access.can_import_registry(user),
    }
