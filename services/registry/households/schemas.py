"""Request and response bodies of the household API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.events.registry import Relation, RemovalReason, Sex, Source
from shared.pagination import Page
from shared.pii import InvalidCitizenId, InvalidPhone, validate_citizen_id, validate_thai_phone
from shared.text import Text


def _citizen_id(value: str) -> str:
    try:
        return validate_citizen_id(value)
    except InvalidCitizenId as exc:
        raise ValueError(str(exc)) from exc


CitizenId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=20),
    AfterValidator(_citizen_id),
]


def _phone(value: str) -> str:
    try:
        return validate_thai_phone(value)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from exc


Phone = Annotated[str, StringConstraints(min_length=1, max_length=20), AfterValidator(_phone)]
Name = Annotated[Text, StringConstraints(max_length=120)]
SubdistrictCode = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
HouseNo = Annotated[Text, StringConstraints(max_length=40)]

_STRICT = ConfigDict(extra="forbid")


class Address(BaseModel):
    """Where the household lives: sub-district, village number (หมู่ที่), house number."""

    model_config = _STRICT

    subdistrict_code: SubdistrictCode = Field(examples=["400101"])
    village_no: int = Field(ge=1, le=99, examples=[3])
    house_no: HouseNo = Field(examples=["12/3"])
    lat: float | None = Field(default=None, ge=5.0, le=21.0, description="WGS 84 latitude (Thailand)")
    lon: float | None = Field(default=None, ge=97.0, le=106.0, description="WGS 84 longitude (Thailand)")


class MemberIn(BaseModel):
    """A person to register in a household."""

    model_config = _STRICT

    citizen_id: CitizenId = Field(description="13-digit Thai citizen ID; dashes allowed", examples=["1101700203450"])
    title: Annotated[Text, StringConstraints(max_length=60)] = Field(examples=["นาง"])
    first_name: Name = Field(examples=["สมหญิง"])
    last_name: Name = Field(examples=["ใจดี"])
    sex: Sex
    birth_date: date
    relation: Relation
    disability: bool = False
    phone: Phone | None = Field(None, description="a contact phone: a Thai mobile (10 digits) or fixed-line (9 digits) "
                                                  "number, +66 allowed; stored as its national digits, masked like "
                                                  "citizen IDs in reads, never in events", examples=["081-234-5678"])

    @field_validator("birth_date")
    @classmethod
    def _born_in_the_past(cls, value: date) -> date:
        check_birth_date(value)
        return value


# Thai documents often give years in the Buddhist era (B.E. = C.E. + 543): 2525 is 1982.
BUDDHIST_ERA_OFFSET = 543


def check_birth_date(value: date) -> None:
    """A birth date in the past and after 1880 (ValueError otherwise); a Buddhist-era year gets a hint."""
    if value > date.today():
        if value.year >= 2400:  # B.E. 2400 is 1857
            christian = value.year - BUDDHIST_ERA_OFFSET
            raise ValueError(f"birth_date {value.isoformat()} is in the future: it looks like a Buddhist-era year "
                             f"({value.year}); dates are in the Christian era ({christian}): "
                             f"{christian:04d}{value.isoformat()[4:]}")
        raise ValueError("birth_date is in the future")
    if value.year < 1880:
        raise ValueError("birth_date is before 1880")


def one_head_and_distinct_ids(members: list[MemberIn]) -> list[MemberIn]:
    """A household's members: exactly one head, no citizen ID twice (ValueError otherwise)."""
    heads = sum(1 for m in members if m.relation is Relation.head)
    if heads != 1:
        raise ValueError(f"a household has exactly one head (relation 'head'); this one has {heads}")
    ids = [m.citizen_id for m in members]
    if len(set(ids)) != len(ids):
        raise ValueError("the same citizen ID appears twice in the household")
    return members


class HouseholdCreate(BaseModel):
    model_config = _STRICT

    address: Address
    sources: list[Source] = Field(min_length=1, description="why the household is on the register")
    welfare_card: bool = Field(description="registered for the state welfare card (บัตรสวัสดิการแห่งรัฐ)")
    members: Annotated[list[MemberIn], AfterValidator(one_head_and_distinct_ids)] = Field(min_length=1, max_length=60)


class AddressPatch(BaseModel):
    model_config = _STRICT

    subdistrict_code: SubdistrictCode | None = None
    village_no: int | None = Field(default=None, ge=1, le=99)
    house_no: HouseNo | None = None
    lat: float | None = Field(default=None, ge=5.0, le=21.0)
    lon: float | None = Field(default=None, ge=97.0, le=106.0)


class HouseholdPatch(BaseModel):
    """Fields to change (JSON merge patch: absent fields stay as they are)."""

    model_config = _STRICT

    address: AddressPatch | None = None
    sources: list[Source] | None = Field(default=None, min_length=1)
    welfare_card: bool | None = None


class MemberPatch(BaseModel):
    """A member's fields that change in place (JSON merge patch): the contact phone, or null to remove it."""

    model_config = _STRICT

    phone: Phone | None = Field(description="a Thai mobile or fixed-line number, +66 allowed; null removes it",
                                examples=["081-234-5678"])


class MemberRemove(BaseModel):
    model_config = _STRICT

    reason: RemovalReason
    new_head_member_id: str | None = Field(
        default=None, description="when the head leaves and others stay: the member who becomes head"
    )


class MemberTransfer(BaseModel):
    model_config = _STRICT

    to_household_id: str
    relation: Relation = Field(description="the person's relation to the head of the receiving household")
    new_head_member_id: str | None = None


class HouseholdClose(BaseModel):
    model_config = _STRICT

    reason: Annotated[Text, StringConstraints(max_length=200)] = Field(examples=["ย้ายออกนอกพื้นที่"])


class Lookup(BaseModel):
    model_config = _STRICT

    citizen_id: CitizenId


class Assignment(BaseModel):
    model_config = _STRICT

    team_id: str
    buddy_official: Annotated[Text, StringConstraints(max_length=200)] | None = Field(
        default=None, description="the civil servant (ข้าราชการคู่เสี่ยว) who follows the household",
        examples=["นายสมชาย ดีมาก"],
    )


class MemberOut(BaseModel):
    id: str
    citizen_id: str = Field(description="masked (x-xxxx-xxxx0-12-3: the last four digits at most) unless the "
                                        "caller has scope pii:read")
    citizen_id_masked: bool
    title: str
    first_name: str
    last_name: str
    sex: Sex
    birth_date: date
    relation: Relation
    disability: bool
    phone: str | None = Field(None, description="the contact phone (081-234-5678), masked (xxx-xxx-5678) unless the "
                                                "caller has scope pii:read; null when none is recorded")


class AddressOut(BaseModel):
    province_code: str
    district_code: str
    subdistrict_code: str
    village_no: int
    village_code: str
    house_no: str
    lat: float | None
    lon: float | None


class HouseholdOut(BaseModel):
    id: str
    household_key: str | None = Field(description="the importer's own key of the household (the import file's "
                                                   "`household_key`); null for a household registered by hand")
    version: int
    status: str
    closed_reason: str | None
    address: AddressOut
    sources: list[Source]
    welfare_card: bool
    team_id: str | None
    buddy_official: str | None
    members: list[MemberOut]
    created_at: datetime
    updated_at: datetime


HouseholdPage = Page[HouseholdOut]


class DuplicatePerson(BaseModel):
    household_id: str
    member_id: str
    citizen_id: str


class ProbableDuplicate(BaseModel):
    """People with the same name and birth date but different citizen IDs: likely one person mistyped."""

    first_name: str
    last_name: str
    birth_date: date
    people: list[DuplicatePerson]


DuplicatePage = Page[ProbableDuplicate]
