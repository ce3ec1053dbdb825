"""A labelled PII set: typed entities in varied templates, and look-alikes that are not PII.

Generated from a seed, so it is the same on every machine and needs no file. Positives put each
entity type in several phrasings (names, e-mails, phones in national and international formats,
cards, IBANs, SSNs, IPv4/IPv6); negatives hold what redaction must leave alone: numeric tables,
product codes, versions, gene and unit names, Title Case headings, accented words, random words.
It is a development set: rules are measured on it, and on SciFact's abstracts for false positives.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field

FIRST = [
    "Maria", "James", "Aisha", "Wei", "Olga", "Carlos", "Priya", "Thomas", "Fatima", "Kenji", "Sofia", "David",
    "Amara", "Lucas", "Ingrid", "Mohammed", "Chloe", "Rahul", "Elena", "Samuel", "Yuki", "Grace", "Omar", "Hannah",
    "José", "Zoë", "Björn", "Anaïs", "Liam", "Nadia",
]  # fmt: skip
LAST = [
    "Gonzalez", "Smith", "Khan", "Zhang", "Petrova", "Silva", "Patel", "Müller", "Haddad", "Tanaka", "Rossi", "Cohen",
    "Okafor", "Martin", "Larsen", "Rahman", "Dubois", "Sharma", "Popescu", "Nakamura", "O'Brien", "Kowalski",
    "Fernández", "Johansson", "Nguyen", "Schmidt", "Andersen", "Moreau", "Ivanova", "Walker",
]  # fmt: skip
DOMAINS = ["example.com", "corp-mail.com", "mail.example.org", "uni.edu", "evil.example", "startup.io", "gov.uk"]


@dataclass
class Example:
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, entity)
    kind: str = "positive"


def _luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    prefix = rng.choice(["4", "51", "55", "37", "6011"])
    length = 15 if prefix == "37" else 16
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    number = body + _luhn_digit(body)
    if length == 15:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    sep = rng.choice([" ", "-", ""])
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    if country in {"GB", "NL"}:
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        bban += "".join(rng.choice(string.digits) for _ in range(length - 4))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(length))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    iban = f"{country}{check:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _phone(rng: random.Random) -> str:
    # Real area codes: a number no numbering plan could issue is not a phone number to anyone.
    a = rng.choice([212, 415, 312, 617, 202, 305, 206, 512, 303, 404, 718, 646])
    b, c = rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice(
        [
            f"({a}) {b}-{c:04d}",
            f"{a}-{b}-{c:04d}",
            f"+1 {a} {b} {c:04d}",
            f"{a}.{b}.{c:04d}",
            f"+44 20 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            f"+49 30 {rng.randint(10000000, 99999999)}",
            f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        ]
    )


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _email(rng: random.Random) -> str:
    user = rng.choice(
        [
            f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}",
            f"{rng.choice(FIRST).lower()}{rng.randint(1, 99)}",
            "attacker",
            "support+billing",
        ]
    )
    user = user.encode("ascii", "ignore").decode().replace("'", "")
    return f"{user}@{rng.choice(DOMAINS)}"


MAKERS = {
    "PERSON": _name,
    "EMAIL_ADDRESS": _email,
    "PHONE_NUMBER": _phone,
    "CREDIT_CARD": _card,
    "IBAN_CODE": _iban,
    "US_SSN": _ssn,
    "IP_ADDRESS": _ip,
}

POSITIVE_TEMPLATES = [
    "Please contact {PERSON} at {EMAIL_ADDRESS} about the renewal.",
    "{PERSON} approved the refund on Tuesday.",
    "The invoice was sent to {EMAIL_ADDRESS} and copied to {PERSON}.",
    "Call {PHONE_NUMBER} if the portal is down.",
    "You can reach our support desk on {PHONE_NUMBER} between 9 and 5.",
    "Customer phone: {PHONE_NUMBER}",
    "Her social security number is {US_SSN}.",
    "SSN: {US_SSN}",
    "Charge the card {CREDIT_CARD} for the annual plan.",
    "Payment card number {CREDIT_CARD}, expiry 04/27.",
    "Wire the deposit to IBAN {IBAN_CODE} before Friday.",
    "Account {IBAN_CODE} belongs to {PERSON}.",
    "Requests from {IP_ADDRESS} were blocked by the firewall.",
    "The server at {IP_ADDRESS} stopped answering at noon.",
    "Dear {PERSON}, your ticket has been resolved.",
    "Signed, {PERSON}",
    "Forward the logs to {EMAIL_ADDRESS}.",
    "Meeting notes taken by {PERSON}; questions to {EMAIL_ADDRESS} or {PHONE_NUMBER}.",
]

NEGATIVES = [
    "Café déjà vu: retours acceptés sous 30 jours.",
    "Salary bands are reviewed every spring.",
    "Quarterly Revenue Summary",
    "Release Checklist for the Storage Service",
    "| Region | 2021 | 2022 | 2023 |\n| North | 1250400 | 1310250 | 1402210 |\n| South | 4155550132 | 4155550198 | 2125550187 |",
    "Order SKU-4411-2093-77 ships from warehouse 12.",
    "Upgrade to version 2.14.3 before 3.0.0 is released.",
    "IRF7 and BRCA1 expression rose in SiO2-treated cells.",
    "The sample weighed 0.412 g and was heated to 373 K for 20 min.",
    "Figure 3 shows the results of experiment 12 across 5 cohorts.",
    "Table 2: 1,204 paragraphs, 4,155 questions, 3.2 answers per question.",
    "Chapter 7 covers Retrieval, Reranking and Generation.",
    "Lorem Ipsum Dolor Sit Amet Consectetur Adipiscing Elit",
    "Build 20231104 passed; build 20231105 failed on test 4412.",
    "Patients aged 65 to 80 years (n = 1520) were randomised.",
    "Serial numbers 5550132 to 5550198 are recalled.",
    "Reach the top shelf with the Grand Ladder.",
    "Tag v1.2.3.4 marks the rollout of model 384-d.",
    "Mercredi, Paris accueille le salon du livre.",
]

RANDOM_WORDS = [
    "apple",
    "river",
    "stone",
    "quiet",
    "window",
    "garden",
    "silver",
    "yellow",
    "market",
    "engine",
    "candle",
    "forest",
    "basket",
    "ocean",
    "pencil",
    "mirror",
    "thunder",
    "velvet",
    "harbor",
    "lantern",
    "meadow",
    "copper",
    "fabric",
    "orbit",
    "tunnel",
    "pepper",
    "saddle",
    "marble",
    "jungle",
    "rocket",
]

_SLOT = re.compile(r"\{([A-Z_]+)\}")


def _fill(template: str, rng: random.Random) -> Example:
    text, spans, pos = "", [], 0
    for m in _SLOT.finditer(template):
        text += template[pos : m.start()]
        value = MAKERS[m.group(1)](rng)
        spans.append((len(text), len(text) + len(value), m.group(1)))
        text += value
        pos = m.end()
    return Example(text + template[pos:], spans)


def build(seed: int = 7, per_template: int = 12) -> list[Example]:
    """Positives (every template filled `per_template` times) and negatives (each look-alike,
    plus random-word texts, capitalised and not)."""
    rng = random.Random(seed)
    out = [_fill(t, rng) for t in POSITIVE_TEMPLATES for _ in range(per_template)]
    for _ in range(per_template):  # the address spells the name: its lower-case words are not evidence
        first, last = rng.choice(FIRST), rng.choice(LAST)
        user = f"{first}.{last}".lower().encode("ascii", "ignore").decode().replace("'", "")
        name, email = f"{first} {last}", f"{user}@{rng.choice(DOMAINS)}"
        text = f"The on-call engineer is {name}. Page them at {email} tonight."
        a = text.index(name)
        b = text.index(email)
        out.append(Example(text, [(a, a + len(name), "PERSON"), (b, b + len(email), "EMAIL_ADDRESS")]))
    out += [Example(t, [], "negative") for t in NEGATIVES]
    for i in range(20):
        words = [rng.choice(RANDOM_WORDS) for _ in range(30)]
        if i % 2:
            words = [w.capitalize() for w in words]
        out.append(Example(" ".join(words) + ".", [], "negative"))
    return out
