"""Invitations: single-use, site-bound enrolment tokens. Only a hash is ever stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from bot.db.models import Invitation
from bot.domain.tokens import hash_token, new_token
from bot.services.audit import audit
from bot.services.runtime import Runtime


class InvitationError(ValueError):
    pass


@dataclass(frozen=True)
class IssuedInvitation:
    token: str
    link: str
    site_id: str
    subject_id: str | None
    expires_at: datetime
    invitation_id: int


async def issue(
    rt: Runtime,
    *,
    site_id: str,
    subject_id: str | None = None,
    expires_days: int = 7,
    actor_kind: str = "operator",
    actor_id: str | int = "cli",
    purpose: str = "enrol",
    update_id: int | None = None,
) -> IssuedInvitation:
    try:
        rt.settings.site(site_id)
    except KeyError:
        raise InvitationError(f"unknown site {site_id!r}") from None
    if not 1 <= expires_days <= 90:
        raise InvitationError("expiry must be between 1 and 90 days")
    now = rt.now()
    token = new_token()
    async with rt.session() as session:
        invitation = Invitation(
            token_hash=hash_token(token), site_id=site_id, subject_id=subject_id, purpose=purpose,
            created_by=f"{actor_kind}:{actor_id}", created_at=now, expires_at=now + timedelta(days=expires_days),
        )
        session.add(invitation)
        await session.flush()
        audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="invitation.issued",
              entity="invitation", entity_id=invitation.id,
              after={"site_id": site_id, "subject_id": subject_id, "purpose": purpose,
                     "expires_at": invitation.expires_at.isoformat()}, update_id=update_id)
        await session.commit()
    return IssuedInvitation(token=token, link=rt.settings.invitation_link(token), site_id=site_id,
                            subject_id=subject_id, expires_at=invitation.expires_at, invitation_id=invitation.id)


async def find_by_hash(session, *, token_hash: str | None) -> Invitation | None:
    if not token_hash:
        return None
    return (await session.exec(select(Invitation).where(Invitation.token_hash == token_hash))).first()


async def find(session, *, token: str) -> Invitation | None:
    return (await session.exec(select(Invitation).where(Invitation.token_hash == hash_token(token)))).first()
