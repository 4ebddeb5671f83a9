"""Made-up people, addresses and browsers: the PII the pipeline has to mask."""

from __future__ import annotations

import random
import unicodedata

FIRST_NAMES = (
    "Anna", "Bram", "Chloé", "Daan", "Eva", "Femke", "Gerrit", "Hanna", "Isa", "Jörg",
    "Karin", "Lars", "Maartje", "Niels", "Olga", "Pieter", "Quinn", "Rosa", "Sven", "Tessa",
    "Umar", "Vera", "Willem", "Xander", "Yara", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "de Boer",
    "Bos", "Vos", "Peters", "Hendriks", "van Dijk", "Sønderby", "Müller", "O'Brien",
    "Kowalski", "García", "Dubois", "Novak",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example")

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
)

# First octets of public IPv4 space, so addresses look real without being private ranges.
_PUBLIC_FIRST_OCTETS = (31, 37, 62, 77, 80, 82, 84, 85, 86, 89, 91, 94, 145, 176, 185, 212, 217)


def full_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def email_for(name: str, rng: random.Random, domain: str | None = None) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    first, _, last = ascii_name.lower().partition(" ")
    last = "".join(ch for ch in last if ch.isalnum())
    return f"{first}.{last}@{domain or rng.choice(EMAIL_DOMAINS)}"


def ipv4(rng: random.Random) -> str:
    return ".".join(
        [str(rng.choice(_PUBLIC_FIRST_OCTETS))] + [str(rng.randint(1, 254)) for _ in range(3)]
    )
