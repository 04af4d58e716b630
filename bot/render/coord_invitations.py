"""Coordinator screens for invitations: the invitation and its QR caption, the open list, revoking."""

from __future__ import annotations

from bot.channels.port import Action, Actions
from bot.render.actions import buttons
from bot.config import Site
from bot.i18n import Translator
from bot.render import callbacks as cb
from bot.services.invitations import OpenInvitation


def invitation_caption(t: Translator, *, link: str, subject_id: str | None, site: Site, expires_at,
                       purpose: str = "enrol") -> str:
    head = t._("New phone link for {subject}", subject=subject_id) if purpose == "rebind" else \
        t._("Invitation for {subject}", subject=subject_id or t._("a new patient"))
    return "\n".join([
        head,
        t._("Site: {site}", site=site.name(t.locale)),
        t._("Let the patient scan this QR code with their phone camera, or send them the link:"),
        link,
        t._("Single use. Expires {when}.", when=t.datetime(expires_at)),
    ])


def invitation_keyboard(t: Translator, invitation_id: int) -> Actions:
    return buttons([[Action(t._("Revoke"), data=cb.revoke_invitation(invitation_id))]])


def invitations_list(t: Translator, items: list[OpenInvitation]) -> tuple[str, Actions | None]:
    if not items:
        return t._("No open invitations."), None
    lines = [t._("Open invitations ({count}):", count=len(items))]
    rows = []
    for item in items:
        who = item.subject_id or t._("new patient")
        kind = {"rebind": " " + t._("(new phone)"), "helper": " " + t._("(family helper)")}.get(item.purpose, "")
        lines.append(t._("#{id} {who}{kind}: expires {when}", id=item.id, who=who, kind=kind,
                         when=t.datetime(item.expires_at)))
        rows.append([Action(t._("Revoke #{id} {who}", id=item.id, who=who), data=cb.revoke_invitation(item.id))])
    return "\n".join(lines), buttons(rows[:50])


def revoke_result(t: Translator, status: str) -> str:
    return {
        "revoked": t._("Invitation revoked. The link no longer works."),
        "used": t._("This invitation was already used."),
        "expired": t._("This invitation had already expired."),
        "revoked_already": t._("This invitation was already revoked."),
    }[status]
