"""Data access requests, reminders and complaints, filled from datenanfragen templates (pure).

A letter = recipient (the datenanfragen record, else the tracker lists' privacy page with a
warning), the template filled in, and an evidence annex: dates and devices, hosts contacted,
kinds of data received, and only the identifiers the person chose to include.
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from gazeback.knowledge.datenanfragen import Directory

LAWS = ("gdpr", "ccpa")
KINDS = ("access", "admonition", "complaint")
DUE_DAYS = {"gdpr": 30, "ccpa": 45}  # Art. 12(3) GDPR: one month; Cal. Civ. Code 1798.130: 45 days

SUBJECTS = {
    "cs": "Žádost o přístup k osobním údajům (čl. 15 GDPR)",
    "de": "Auskunftsersuchen nach Art. 15 DSGVO",
    "el": "Αίτημα πρόσβασης σε προσωπικά δεδομένα (άρθρο 15 ΓΚΠΔ)",
    "en": "Request for access to personal data (Article 15 GDPR)",
    "es": "Solicitud de acceso a datos personales (artículo 15 RGPD)",
    "fr": "Demande d'accès aux données personnelles (article 15 RGPD)",
    "hr": "Zahtjev za pristup osobnim podacima (članak 15. GDPR)",
    "it": "Richiesta di accesso ai dati personali (articolo 15 GDPR)",
    "nl": "Verzoek om inzage in persoonsgegevens (artikel 15 AVG)",
    "pt": "Pedido de acesso a dados pessoais (artigo 15.º RGPD)",
    "ro": "Cerere de acces la datele cu caracter personal (articolul 15 GDPR)",
    "sv": "Begäran om tillgång till personuppgifter (artikel 15 GDPR)",
}
REMINDER_SUBJECT = {"en": "Reminder: my request of {date}", "de": "Erinnerung: meine Anfrage vom {date}",
                    "fr": "Rappel : ma demande du {date}"}  # fmt: skip
COMPLAINT_SUBJECT = {"en": "Complaint under Article 77 GDPR", "de": "Beschwerde nach Art. 77 DSGVO",
                     "fr": "Réclamation au titre de l'article 77 RGPD"}  # fmt: skip
# The annex: English, German and French wording; other languages get the English annex.
ANNEX = {
    "en": {
        "title": "Annex: what my devices sent to you",
        "intro": "I recorded the traffic of my own devices with gazeback. Your servers received "
        "the following from them.",
        "why_ids": "I include these identifiers so that you can find my data.",
        "period": "Period",
        "devices": "Devices",
        "hosts": "Your hosts my devices contacted (number of requests)",
        "kinds": "Kinds of personal data you received",
        "learned": "What the requests told you about me",
        "ids": "Identifiers of mine you received",
        "none_chosen": "(none included in this letter)",
        "pids": "Other ID-like values that stayed the same across visits: {n} (not kept by gazeback)",
        "requests": "requests",
        "request": "request",
    },
    "de": {
        "title": "Anlage: was meine Geräte an Sie gesendet haben",
        "intro": "Ich habe den Datenverkehr meiner eigenen Geräte mit gazeback aufgezeichnet. Ihre "
        "Server haben von ihnen Folgendes erhalten.",
        "why_ids": "Die Kennungen gebe ich an, damit Sie meine Daten finden können.",
        "period": "Zeitraum",
        "devices": "Geräte",
        "hosts": "Ihre Hosts, die meine Geräte kontaktiert haben (Anzahl der Anfragen)",
        "kinds": "Arten personenbezogener Daten, die Sie erhalten haben",
        "learned": "Was die Anfragen Ihnen über mich mitteilten",
        "ids": "Meine Kennungen, die Sie erhalten haben",
        "none_chosen": "(in diesem Schreiben keine angegeben)",
        "pids": "Weitere gleichbleibende ID-artige Werte: {n} (von gazeback nicht gespeichert)",
        "requests": "Anfragen",
        "request": "Anfrage",
    },
    "fr": {
        "title": "Annexe : ce que mes appareils vous ont envoyé",
        "intro": "J'ai enregistré le trafic de mes propres appareils avec gazeback. Vos serveurs "
        "ont reçu ce qui suit.",
        "why_ids": "J'indique ces identifiants pour que vous puissiez trouver mes données.",
        "period": "Période",
        "devices": "Appareils",
        "hosts": "Vos hôtes contactés par mes appareils (nombre de requêtes)",
        "kinds": "Types de données personnelles reçues",
        "learned": "Ce que les requêtes vous ont appris sur moi",
        "ids": "Mes identifiants que vous avez reçus",
        "none_chosen": "(aucun inclus dans ce courrier)",
        "pids": "Autres valeurs de type identifiant restées identiques : {n} (non conservées)",
        "requests": "requêtes",
        "request": "requête",
    },
}
PII_WORDS = {
    "en": {"email": "e-mail address", "phone": "phone number", "name": "name",
           "ad_id": "advertising ID", "android_id": "Android device ID", "imei": "IMEI",
           "mac": "MAC address", "location": "location", "ip": "IP address",
           "other": "other identifier", "persistent_id": "persistent identifier"},
    "de": {"email": "E-Mail-Adresse", "phone": "Telefonnummer", "name": "Name",
           "ad_id": "Werbe-ID", "android_id": "Android-Geräte-ID", "imei": "IMEI",
           "mac": "MAC-Adresse", "location": "Standort", "ip": "IP-Adresse",
           "other": "sonstige Kennung", "persistent_id": "dauerhafte Kennung"},
    "fr": {"email": "adresse e-mail", "phone": "numéro de téléphone", "name": "nom",
           "ad_id": "identifiant publicitaire", "android_id": "identifiant Android",
           "imei": "IMEI", "mac": "adresse MAC", "location": "localisation",
           "ip": "adresse IP", "other": "autre identifiant",
           "persistent_id": "identifiant persistant"},
}  # fmt: skip
NO_RECORD = {
    "en": "CHECK THE CONTACT: gazeback has no verified privacy contact for this company. Look "
    "up the data protection contact on its privacy page{page} before sending.",
    "de": "KONTAKT PRÜFEN: gazeback kennt keinen geprüften Datenschutzkontakt dieses "
    "Unternehmens. Bitte vor dem Versand auf seiner Datenschutzseite{page} nachsehen.",
    "fr": "VÉRIFIER LE CONTACT : gazeback ne connaît pas de contact vérifié pour cette "
    "entreprise. Cherchez-le sur sa page de confidentialité{page} avant l'envoi.",
}
CCPA_TEXT = """To whom it may concern:

I am a California consumer and I request, under sections 1798.100, 1798.110 and 1798.115 of the California Civil Code (CCPA, as amended by the CPRA), that you disclose to me:
1. the categories and specific pieces of personal information you have collected about me;
2. the categories of sources from which it was collected;
3. the business or commercial purpose for collecting, selling or sharing it;
4. the categories of third parties to whom you disclosed, sold or shared it.

The annex lists identifiers that your servers received from my devices; please use them to find my data, and tell me which other information you need to identify me. Please answer within 45 days, as section 1798.130 requires.

Sincerely,"""


@dataclass(frozen=True)
class Company:
    """The company a letter is for, as the current-owner resolution sees it."""

    id: str
    name: str
    owner_name: str | None = None
    domains: tuple[str, ...] = ()
    privacy_policy_url: str | None = None
    history: tuple[dict[str, Any], ...] = ()


@dataclass
class Evidence:
    """What one company received from this person's devices (no identifier values here)."""

    first_seen: str | None = None
    last_seen: str | None = None
    devices: list[tuple[str, int]] = field(default_factory=list)  # (label, requests)
    hosts: list[tuple[str, int]] = field(default_factory=list)
    kinds: list[tuple[str, int]] = field(default_factory=list)  # (pii_type, times)
    learned: list[tuple[str, int]] = field(default_factory=list)  # (what, times): issue #14
    persistent_ids: int = 0
    requests: int = 0


@dataclass(frozen=True)
class Identifier:
    """One identifier the person chose to include (its value, decrypted for this letter only)."""

    id: int
    kind: str
    label: str
    value: str


@dataclass
class Letter:
    kind: str
    lang: str
    law: str
    recipient_name: str
    recipient_address: str
    email: str | None
    webform: str | None
    record: str | None  # datenanfragen slug, None when there is no record
    subject: str
    body: str
    annex: str
    warning: str | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The letter as plain text (for an e-mail), recipient block first."""
        head = [self.recipient_name, *self.recipient_address.splitlines()]
        if self.email:
            head.append(self.email)
        elif self.webform:
            head.append(self.webform)
        parts = [f"[{self.warning}]\n" if self.warning else "", "\n".join(head), "",
                 self.subject, "", self.body.rstrip(), "", self.annex.rstrip(), ""]  # fmt: skip
        return "\n".join(p for p in parts if p is not None).lstrip("\n")

    def mailto(self) -> str | None:
        if not self.email:
            return None
        body = self.body.rstrip() + "\n\n" + self.annex.rstrip() + "\n"
        return (
            f"mailto:{quote(self.email, safe='@')}?subject={quote(self.subject)}&body={quote(body)}"
        )

    def html(self) -> str:
        """A printable page (no script, no outside resources)."""
        e = html.escape
        warn = f'<p class="warn"><strong>{e(self.warning)}</strong></p>' if self.warning else ""
        contact = e(self.email or self.webform or "")
        return (
            '<!doctype html><html lang="' + e(self.lang) + '"><meta charset="utf-8">'
            f"<title>{e(self.subject)}</title>"
            "<style>body{font:12pt/1.5 serif;max-width:40em;margin:2em auto}"
            ".warn{border:2px solid #b00;padding:.5em}pre{white-space:pre-wrap;font:inherit}"
            "@media print{.warn{border-color:#000}}</style><body>"
            f"{warn}<address>{e(self.recipient_name)}<br>"
            + "<br>".join(e(x) for x in self.recipient_address.splitlines())
            + f"<br>{contact}</address><h1>{e(self.subject)}</h1>"
            f"<pre>{e(self.body.rstrip())}</pre><hr><pre>{e(self.annex.rstrip())}</pre>"
            "</body></html>\n"
        )


def fill(template: str, flags: dict[str, bool], values: dict[str, str]) -> str:
    """Fill a datenanfragen template: ``[flag>text]`` kept when the flag is on, ``{var}``
    replaced; other ``{hint, e.g.: text}`` fields become their example text (after ``: ``),
    else ``[hint]`` for the person to complete. ``<italic>`` markup is dropped."""

    def block(m: re.Match[str]) -> str:
        return m[2] if flags.get(m[1]) else ""

    text = re.sub(r"\[([a-z_]+)>(.*?)\]", block, template, flags=re.S)

    def var(m: re.Match[str]) -> str:
        inner = m[1]
        if inner in values:
            return values[inner]
        if ": " in inner:
            return inner.split(": ", 1)[1].strip()
        return f"[{inner}]"

    text = re.sub(r"\{([^{}]+)\}", var, text)
    return re.sub(r"</?italic>", "", text)


def ownership_note(company: Company) -> str | None:
    """``"owned by Acxiom until 2018-10"`` (the most recent change), or None."""
    for h in reversed(company.history):
        if h.get("previous_owner") and not h.get("date_is_as_of"):
            return f"owned by {h['previous_owner']} until {h['date']}"
        if h.get("previous_owner"):
            return f"formerly listed under {h['previous_owner']}"
    return None


@functools.cache
def _property_names() -> dict[str, dict[str, str]]:
    path = files("gazeback") / "data" / "property-names.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))["properties"])


def property_name(prop: str, lang: str) -> str:
    """A TrackHAR property's neutral name in the letter's language (en, de, fr; else English):
    a letter names what the company received, not the dashboard's words to the person."""
    names = _property_names().get(prop)
    if not names:
        return prop
    return names.get(lang) or names["en"]


def annex_text(company: Company, ev: Evidence, chosen: list[Identifier], lang: str) -> str:
    w = ANNEX.get(lang, ANNEX["en"])
    words = PII_WORDS.get(lang, PII_WORDS["en"])
    lines = [w["title"], "=" * len(w["title"]), "", w["intro"], ""]
    if ev.first_seen:
        lines.append(f"{w['period']}: {ev.first_seen[:10]} – {(ev.last_seen or '')[:10]}")
    if ev.devices:
        lines.append(
            f"{w['devices']}: "
            + ", ".join(
                f"{d} ({n} {w['requests'] if n != 1 else w['request']})" for d, n in ev.devices
            )
        )
    if ev.hosts:
        lines += ["", w["hosts"] + ":"] + [f"- {h} ({n})" for h, n in ev.hosts]
    if ev.kinds:
        lines += ["", w["kinds"] + ":"] + [f"- {words.get(k, k)} ({n})" for k, n in ev.kinds]
    if ev.learned:
        lines += ["", w["learned"] + ":"] + [
            f"- {property_name(k, lang)} ({n} {w['requests'] if n != 1 else w['request']})"
            for k, n in ev.learned
        ]
    lines += ["", w["ids"] + ":"]
    lines += [f"- {words.get(i.kind, i.kind)}: {i.value}" for i in chosen] or [w["none_chosen"]]
    if chosen:
        lines.append(w["why_ids"])
    if ev.persistent_ids:
        lines += ["", w["pids"].format(n=ev.persistent_ids)]
    return "\n".join(lines) + "\n"


def due_date(sent: date, law: str = "gdpr") -> date:
    """One month after sending (GDPR: the same day of the next month, or its last day)."""
    if law != "gdpr":
        return sent + timedelta(days=DUE_DAYS[law])
    year, month = (sent.year + 1, 1) if sent.month == 12 else (sent.year, sent.month + 1)
    for day in range(sent.day, 27, -1):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    return date(year, month, min(sent.day, 28))


def recipient(
    directory: Directory, company: Company, lang: str, country: str = ""
) -> tuple[str | None, dict[str, Any], str | None]:
    """(record slug, recipient fields, warning) for a company: its datenanfragen record, else
    its privacy page from the tracker lists, with a warning that the contact must be checked."""
    names = [company.name, company.id.replace("_", " ")]
    if company.owner_name:
        names.append(company.owner_name)
    country = country or {"en": "gb", "el": "gr", "cs": "cz", "sv": "se"}.get(lang, lang)
    slug = directory.find(list(company.domains), names, country)
    if slug is not None:
        return slug, directory.companies[slug], None
    page = f" ({company.privacy_policy_url})" if company.privacy_policy_url else ""
    warning = NO_RECORD.get(lang, NO_RECORD["en"]).format(page=page)
    return None, {"name": company.name, "address": "", "web": company.privacy_policy_url}, warning


def access_letter(
    directory: Directory,
    company: Company,
    ev: Evidence,
    chosen: list[Identifier],
    lang: str = "en",
    law: str = "gdpr",
    country: str = "",
) -> Letter:
    """The access request; ``country`` (the person's) picks among a company's regional
    records, else the language does (de → Germany)."""
    if law not in LAWS:
        raise ValueError(f"--law {law!r}: gazeback writes letters for {', '.join(LAWS)}")
    slug, rec, warning = recipient(directory, company, lang, country)
    notes = []
    if law == "ccpa":
        if lang != "en":
            notes.append("CCPA letters are written in English.")
        lang, body = "en", CCPA_TEXT
        subject = "Request to know (California Consumer Privacy Act)"
    else:
        templates = directory.templates.get(lang, {})
        template = templates.get("access-tracking") or templates.get("access-default")
        if template is None:
            notes.append(f"No access template in {lang!r}: the letter is in English.")
            lang, template = "en", directory.templates["en"]["access-tracking"]
        runs = rec.get("runs", [])
        body = fill(
            template,
            {"runs": bool(runs), "has_fields": False, "data_portability": False},
            {"runs_list": ", ".join(runs).rstrip("."), "id_data": ""},
        )
        subject = SUBJECTS.get(lang, SUBJECTS["en"])
    if lang not in ANNEX:
        notes.append("The evidence annex is in English (only en, de and fr are translated).")
    return Letter(
        kind="access", lang=lang, law=law, recipient_name=rec["name"],
        recipient_address=rec.get("address", ""), email=rec.get("email"),
        webform=rec.get("webform") or (rec.get("web") if slug is None else None), record=slug,
        subject=subject, body=body, annex=annex_text(company, ev, chosen, lang),
        warning=warning, notes=notes,
    )  # fmt: skip


def follow_up(
    directory: Directory,
    kind: str,
    company: Company,
    ev: Evidence,
    chosen: list[Identifier],
    sent_on: date,
    lang: str = "en",
    country: str = "",
) -> Letter:
    """The reminder (``admonition``) to the company, or the ``complaint`` to the authority."""
    slug, rec, warning = recipient(directory, company, lang, country)
    templates = directory.templates.get(lang, {})
    notes = []
    if kind not in templates:
        notes.append(f"No {kind} template in {lang!r}: the letter is in English.")
        lang, templates = "en", directory.templates["en"]
    address = "\n".join([rec["name"], rec.get("address", "")]).strip()
    body = fill(
        templates[kind],
        {},
        {"request_date": sent_on.isoformat(), "request_article": "15",
         "request_recipient_address": address},
    )  # fmt: skip
    if kind == "admonition":
        subject = REMINDER_SUBJECT.get(lang, REMINDER_SUBJECT["en"]).format(
            date=sent_on.isoformat()
        )
        to = rec
    else:
        subject = COMPLAINT_SUBJECT.get(lang, COMPLAINT_SUBJECT["en"])
        auth = directory.authority_for(country or (rec.get("relevant-countries") or ["de"])[0])
        to = directory.authorities[auth] if auth else {"name": "(your supervisory authority)"}
        if auth is None:
            warning = "No supervisory authority found for this country: look yours up."
    return Letter(
        kind=kind, lang=lang, law="gdpr", recipient_name=to["name"],
        recipient_address=to.get("address", ""), email=to.get("email"),
        webform=to.get("webform"), record=slug, subject=subject, body=body,
        annex=annex_text(company, ev, chosen, lang), warning=warning, notes=notes,
    )  # fmt: skip
