"""Study-team subcommands of `adherence-bot`: everything a coordinator can do in Telegram, for
operators at a terminal. They act as the operator (audited as operator:cli) on every site, or
on the one given with --site. Output is plain English text; exit status 1 on a refusal."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date, datetime
from pathlib import Path


class TeamCommandError(Exception):
    pass


def add_parsers(sub, config_arg) -> None:
    def command(name: str, help_text: str, *, subject: bool = False, site: bool = False) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text)
        config_arg(parser)
        if subject:
            parser.add_argument("subject", help="subject id, e.g. SH-017")
        if site:
            parser.add_argument("--site", default=None, help="limit to one site id (default: all sites)")
        return parser

    command("invites", "list open invitations", site=True)
    command("revoke", "revoke an open invitation").add_argument("invitation_id", type=int)
    command("patients", "list patients with status and this course's marks", site=True)
    command("patient", "one patient: courses, dose days, symptom reports, open alerts", subject=True)
    for name, help_text in (("pause", "pause a patient's reminders"), ("resume", "resume a patient's reminders")):
        command(name, help_text, subject=True).add_argument("--reason", default=None)
    command("withdraw", "withdraw a patient (stops all messages, keeps all data)",
            subject=True).add_argument("--reason", required=True)
    command("rebind", "issue a new-phone link for a patient", subject=True)
    correct = command("correct", "correct a course's chemotherapy end date", subject=True)
    correct.add_argument("--chemo-end", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    correct.add_argument("--reason", required=True)
    correct.add_argument("--cycle", type=int, default=None, help="default: the current course")
    cancel = command("cancel-course", "cancel a course (planned days are removed)", subject=True)
    cancel.add_argument("--reason", required=True)
    cancel.add_argument("--cycle", type=int, default=None, help="default: the current course")
    dose = command("dose", "correct one dose day (source = coordinator; the reason is audited)", subject=True)
    dose.add_argument("date", type=date.fromisoformat, help="the patient's local date, YYYY-MM-DD")
    dose.add_argument("state", choices=("taken", "missed", "not_reported"))
    dose.add_argument("--reason", required=True)
    command("confirm-course", "confirm a course the patient reported",
            subject=True).add_argument("--cycle", type=int, default=None)
    command("visit", "register, move, cancel or confirm a visit (as /visit in Telegram)").add_argument(
        "words", nargs="+", help="SUBJECT YYYY-MM-DD HH:MM [kind] | move ID YYYY-MM-DD HH:MM REASON | "
        "cancel ID REASON | attended ID")
    command("helper", "issue a family helper invitation for a patient (prints the link once)", subject=True)
    remove_helper = command("helper-remove", "remove a family helper (cut off at once)")
    remove_helper.add_argument("helper_id", help="pseudonymous helper id, e.g. H-SH-001")
    remove_helper.add_argument("--reason", required=True)
    command("alerts", "list open alerts", site=True)
    command("ack", "acknowledge an alert with the code from its mail (for staff who cannot reach Telegram)"
            ).add_argument("code", help="the code in the alert mail, e.g. 123-K7Q2M9XZTA")
    command("recipient-fixed", "a staff mailbox or chat the channel refused works again: send it alerts again"
            ).add_argument("address", help="the coordinator's email address (or Telegram chat id) as in the config")
    command("digest", "print today's digest (does not replace the scheduled one)", site=True)
    command("report", "write the adherence chart as PNG files", site=True).add_argument(
        "--out", type=Path, required=True, help="directory for the PNG files")
    command("export", "write the data export as CSV files", site=True).add_argument(
        "--out", type=Path, required=True, help="directory for the CSV files")


def _en(settings, site_id: str | None = None):
    from bot.i18n import Translator

    site = settings.site(site_id) if site_id else settings.sites[0]
    return Translator("en", site.tz)


async def _run(settings, work):
    from bot.db.engine import make_engine
    from bot.services.coord_access import NotFound, NotPermitted
    from bot.services.courses import CourseRefused
    from bot.services.invitations import InviteRefused
    from bot.services.patients import PatientActionRefused
    from bot.services.runtime import Runtime

    engine = make_engine(settings.database.url)
    try:
        return await work(Runtime(settings=settings, engine=engine))
    except (NotFound, NotPermitted) as error:
        raise TeamCommandError(f"no such patient, invitation or course: {error}") from None
    except (CourseRefused, PatientActionRefused, InviteRefused) as error:
        raise TeamCommandError(f"refused: {error.code} {error}".strip()) from None
    finally:
        await engine.dispose()


def _actor(args):
    from bot.services.coord_access import operator_actor

    return operator_actor(getattr(args, "site", None))


def cmd_invites(args, settings) -> int:
    from bot.services import invitations

    rows = asyncio.run(_run(settings, lambda rt: invitations.list_open(rt, _actor(args), site_id=args.site)))
    for row in rows:
        print(f"#{row.id}\t{row.site_id}\t{row.subject_id or '-'}\t{row.purpose}\texpires {row.expires_at.isoformat()}")
    print(f"{len(rows)} open invitations")
    return 0


def cmd_revoke(args, settings) -> int:
    from bot.services import invitations

    status = asyncio.run(_run(settings, lambda rt: invitations.revoke(rt, _actor(args),
                                                                        invitation_id=args.invitation_id)))
    print(f"invitation #{args.invitation_id}: {status}")
    return 0 if status == "revoked" else 1


def cmd_patients(args, settings) -> int:
    from bot.render import coord_patients as patient_views
    from bot.services import patients

    rows = asyncio.run(_run(settings, lambda rt: patients.overview(rt, _actor(args), site_id=args.site)))
    for text in patient_views.patients_list(_en(settings, args.site), settings, rows):
        print(text)
    return 0


def cmd_patient(args, settings) -> int:
    from bot.render import coord_patients as patient_views
    from bot.services import patients

    detail = asyncio.run(_run(settings, lambda rt: patients.detail(rt, _actor(args), subject_id=args.subject)))
    print(patient_views.patient_card(_en(settings, detail.patient.site_id), settings, detail)[0])
    return 0


def _paused(paused: bool):
    def command(args, settings) -> int:
        from bot.services import patients

        patient = asyncio.run(_run(settings, lambda rt: patients.set_paused_by_staff(
            rt, _actor(args), subject_id=args.subject, paused=paused, reason=args.reason)))
        print(f"{patient.subject_id}: {patient.status}")
        return 0

    return command


def cmd_withdraw(args, settings) -> int:
    from bot.services import patients

    patient = asyncio.run(_run(settings, lambda rt: patients.withdraw(rt, _actor(args), subject_id=args.subject,
                                                                            reason=args.reason)))
    print(f"{patient.subject_id}: withdrawn (no more messages; all data kept)")
    return 0


def cmd_dose(args, settings) -> int:
    from bot.services import patients

    dose = asyncio.run(_run(settings, lambda rt: patients.correct_day(
        rt, _actor(args), subject_id=args.subject, local_date=args.date, new_state=args.state, reason=args.reason)))
    print(f"{args.subject} {args.date}: corrected to {dose.state} (cycle {dose.cycle}, day {dose.day})")
    return 0


def cmd_rebind(args, settings) -> int:
    from bot.services import patients

    issued = asyncio.run(_run(settings, lambda rt: patients.rebind(rt, _actor(args), subject_id=args.subject)))
    print(f"token: {issued.token}")
    print(f"link: {issued.link}")
    print(f"expires: {issued.expires_at.isoformat()}")
    return 0


def cmd_correct(args, settings) -> int:
    from bot.services import courses

    async def work(rt):
        course = await courses.target(rt, _actor(args), subject_id=args.subject, cycle=args.cycle,
                                            what="correct_course")
        return await courses.reanchor(rt, _actor(args), subject_id=args.subject, cycle=course.cycle,
                                            new_chemo_end=args.chemo_end, reason=args.reason)

    course = asyncio.run(_run(settings, work))
    print(f"{args.subject}: cycle {course.cycle}, doses {course.first_day} .. {course.last_day}")
    return 0


def cmd_cancel_course(args, settings) -> int:
    from bot.services import courses

    course = asyncio.run(_run(settings, lambda rt: courses.cancel(rt, _actor(args), subject_id=args.subject,
                                                                        cycle=args.cycle, reason=args.reason)))
    print(f"{args.subject}: cycle {course.cycle} cancelled")
    return 0


def cmd_confirm_course(args, settings) -> int:
    from bot.services import courses

    async def work(rt):
        course = await courses.target(rt, _actor(args), subject_id=args.subject, cycle=args.cycle,
                                            what="confirm_course")
        return await courses.confirm(rt, _actor(args), course_id=course.id)

    status, course = asyncio.run(_run(settings, work))
    print(f"{args.subject}: cycle {course.cycle} {status}")
    return 0


def cmd_alerts(args, settings) -> int:
    from bot.services import alerts

    rows = asyncio.run(_run(settings, lambda rt: alerts.open_alerts(rt, _actor(args), site_id=args.site)))
    for alert in rows:
        subject = (alert.details or {}).get("subject_id") or "-"
        print(f"#{alert.id}\t{alert.site_id}\t{subject}\t{alert.kind}\t{alert.level}\t{alert.created_at.isoformat()}"
              f"\trepeats={alert.repeats}\tescalated={'yes' if alert.escalated_at else 'no'}")
    print(f"{len(rows)} open alerts")
    return 0


def cmd_ack(args, settings) -> int:
    from bot.services import alerts

    result = asyncio.run(_run(settings, lambda rt: alerts.acknowledge_by_code(rt, code=args.code,
                                                                                  operator="operator:cli")))
    if result.status == "invalid":
        raise TeamCommandError("no alert has this code: check it against the mail (e.g. 123-K7Q2M9XZTA)")
    print(f"alert #{result.alert.id} " + ("acknowledged" if result.status == "acknowledged" else
                                         "was already acknowledged"))
    return 0


def cmd_recipient_fixed(args, settings) -> int:
    from bot.services import alerts

    name = asyncio.run(_run(settings, lambda rt: alerts.recipient_fixed(rt, address=args.address)))
    if name is None:
        raise TeamCommandError("no refused staff recipient has this address: nothing to do")
    print(f"{name} gets alerts again")
    return 0


def cmd_digest(args, settings) -> int:
    from bot.render import coord_reports
    from bot.services import digest

    async def work(rt):
        return [await digest.build(rt, site_id=s.id) for s in settings.sites if args.site in (None, s.id)]

    for built in asyncio.run(_run(settings, work)):
        for text in coord_reports.digest_text(_en(settings, built.site_id), settings, built):
            print(text)
        print()
    return 0


def cmd_report(args, settings) -> int:
    from bot.render import coord_reports
    from bot.reports.chart import render_pages
    from bot.services import patients

    async def work(rt):
        return {s.id: await patients.overview(rt, _actor(args), site_id=s.id)
                for s in settings.sites if args.site in (None, s.id)}

    args.out.mkdir(parents=True, exist_ok=True)
    for site_id, rows in asyncio.run(_run(settings, work)).items():
        site = settings.site(site_id)
        today = datetime.now(site.tz).date()
        charted = coord_reports.chart_rows(rows)
        if not charted:
            print(f"{site_id}: no patient has a course yet; no chart written")
            continue
        pages = render_pages(charted, columns=settings.trial.course_days, t=_en(settings, site_id), site=site,
                             day=today)
        for number, page in enumerate(pages, start=1):
            path = args.out / f"adherence-{site_id}-{today.isoformat()}-{number}.png"
            path.write_bytes(page.png)
            print(f"{path}: {len(page.rows)} patients x {page.columns} days")
    return 0


def cmd_export(args, settings) -> int:
    from bot.reports import csv_files
    from bot.services import exports

    if args.site and args.site not in {s.id for s in settings.sites}:
        raise TeamCommandError(f"unknown site {args.site!r}")
    data = asyncio.run(_run(settings, lambda rt: exports.collect(rt, _actor(args), site_id=args.site)))
    rows = {**data.tables, csv_files.CODEBOOK: data.codebook}
    for path in csv_files.write_directory(data, args.out):
        print(f"{path}: {len(rows[path.stem])} rows" if path.suffix == ".csv" else str(path))
    return 0


def cmd_visit(args, settings) -> int:
    from bot.channels.telegram.handlers.visits import parse_command, run_command
    from bot.services.visits import VisitRefused

    parsed = parse_command(args.words)
    if parsed is None:
        raise TeamCommandError("usage: visit SUBJECT YYYY-MM-DD HH:MM [kind] | visit move ID YYYY-MM-DD HH:MM REASON "
                               "| visit cancel ID REASON | visit attended ID")

    async def work(rt):
        try:
            return await run_command(rt, _actor(args), parsed)
        except VisitRefused as refused:
            raise TeamCommandError(f"refused: {refused.code}") from None

    visit, patient = asyncio.run(_run(settings, work))
    print(f"visit #{visit.id}\t{patient.subject_id}\t{visit.kind}\t{visit.at.isoformat()}\t{visit.status}")
    return 0


def cmd_helper(args, settings) -> int:
    from bot.services import family

    async def work(rt):
        try:
            if args.command == "helper":
                return await family.invite_by_coordinator(rt, _actor(args), subject_id=args.subject)
            return await family.remove_by_coordinator(rt, _actor(args), helper_id=args.helper_id, reason=args.reason)
        except family.HelperRefused as refused:
            raise TeamCommandError(f"refused: {refused.code}") from None

    done = asyncio.run(_run(settings, work))
    if args.command == "helper":
        issued, patient = done
        print(f"helper invitation #{issued.invitation_id} for {patient.subject_id} (expires "
              f"{issued.expires_at.isoformat()}; patient consent: {'yes' if patient.helper_consent_at else 'not yet'})")
        print(issued.link)
    else:
        helper, patient = done
        print(f"{helper.helper_id} removed (was helping {patient.subject_id})")
    return 0


COMMANDS = {
    "visit": cmd_visit, "helper": cmd_helper, "helper-remove": cmd_helper,
    "invites": cmd_invites, "revoke": cmd_revoke, "patients": cmd_patients, "patient": cmd_patient,
    "pause": _paused(True), "resume": _paused(False), "withdraw": cmd_withdraw, "rebind": cmd_rebind, "dose": cmd_dose,
    "correct": cmd_correct, "cancel-course": cmd_cancel_course, "confirm-course": cmd_confirm_course,
    "alerts": cmd_alerts, "ack": cmd_ack, "recipient-fixed": cmd_recipient_fixed, "digest": cmd_digest, "report": cmd_report, "export": cmd_export,
}
