"""Fake but realistic identities: names, IDs, birth dates, addresses, staff, sites.

Everything is drawn from a seeded ``random.Random``, so a seed gives the same
people every time. None of these are real persons.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

_GIVEN_F = [
    "Maria",
    "Anna",
    "Sofia",
    "Emma",
    "Olivia",
    "Hanna",
    "Julia",
    "Laura",
    "Clara",
    "Ines",
    "Mei",
    "Aisha",
]
_GIVEN_M = [
    "James",
    "Lukas",
    "Noah",
    "Elias",
    "Mateo",
    "Jonas",
    "Ahmed",
    "Ivan",
    "Pierre",
    "Kenji",
    "Omar",
    "Tomas",
]
_FAMILY = [
    "Smith",
    "Muller",
    "Garcia",
    "Rossi",
    "Novak",
    "Kowalski",
    "Jensen",
    "Dubois",
    "Silva",
    "Tanaka",
    "Okafor",
    "Petrov",
    "Larsen",
    "Moreau",
    "Weber",
    "Costa",
    "Nakamura",
    "Haddad",
    "Fischer",
    "Byrne",
]
_STREETS = [
    "Maple Street",
    "Harbor Road",
    "Linden Allee",
    "Station Road",
    "Church Lane",
    "Mill Way",
    "Elm Avenue",
]
_CITIES = [("Springfield", "62701"), ("Riverton", "82501"), ("Lakeside", "92040"), ("Fairview", "97024")]
_SITES = [
    ("St. Example General Hospital", "1 Hospital Drive, Springfield 62701"),
    ("Riverton University Medical Center", "200 Campus Road, Riverton 82501"),
    ("Lakeside Imaging Clinic", "14 Shore Street, Lakeside 92040"),
]


@dataclass(frozen=True)
class Person:
    family: str
    given: str
    middle: str = ""
    prefix: str = ""

    @property
    def pn(self) -> str:
        """DICOM PN: Family^Given^Middle^Prefix (trailing empty parts dropped)."""
        return f"{self.family}^{self.given}^{self.middle}^{self.prefix}".rstrip("^")


@dataclass(frozen=True)
class Patient:
    person: Person
    patient_id: str
    other_id: str
    issuer: str
    birth_date: date
    sex: str
    address: str
    phone: str
    height_m: float
    weight_kg: float
    occupation: str


@dataclass(frozen=True)
class Site:
    institution: str
    address: str
    department: str
    station: str
    referring: Person
    reading: Person
    operator: Person


def person(rng: random.Random, sex: str | None = None, prefix: str = "") -> Person:
    sex = sex or rng.choice("FM")
    given = rng.choice(_GIVEN_F if sex == "F" else _GIVEN_M)
    middle = rng.choice(["", "", rng.choice("ABCDEFGHJKLMNPRST")])
    return Person(rng.choice(_FAMILY), given, middle, prefix)


def patient(rng: random.Random, index: int) -> Patient:
    sex = rng.choice("FM")
    city, zipcode = rng.choice(_CITIES)
    birth = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 80 * 365))
    return Patient(
        person=person(rng, sex),
        patient_id=f"MRN{rng.randrange(10**7, 10**8)}",
        other_id=f"INS-{rng.randrange(10**9, 10**10)}",
        issuer="SEH-MRN",
        birth_date=birth,
        sex=sex,
        address=f"{rng.randrange(1, 250)} {rng.choice(_STREETS)}, {city} {zipcode}",
        phone=f"+1-555-{rng.randrange(100, 1000)}-{rng.randrange(1000, 10000)}",
        height_m=round(rng.uniform(1.5, 1.95), 2),
        weight_kg=round(rng.uniform(48, 110), 1),
        occupation=rng.choice(["Teacher", "Engineer", "Nurse", "Retired", "Carpenter", "Student"]),
    )


def site(rng: random.Random) -> Site:
    name, address = rng.choice(_SITES)
    return Site(
        institution=name,
        address=address,
        department=rng.choice(["Radiology", "Emergency Radiology", "Neuroradiology"]),
        station=f"RAD{rng.randrange(1, 30):02d}",
        referring=person(rng, prefix="Dr."),
        reading=person(rng, prefix="Dr."),
        operator=person(rng),
    )
