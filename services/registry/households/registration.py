def _address_area(caller: CallerWithPurpose, subdistrict_code: str, village_no: int) -> areas.Area:
    subdistrict = areas.find(subdistrict_code) if len(subdistrict_code) == 6 else None
    if subdistrict is None:
        raise Unprocessable(f"There is no sub-district {subdistrict_code}.",
                            errors=[{"field": "address.subdistrict_code", "message": "unknown sub-district code"}])
    code = areas.village_code(subdistrict_code, village_no)
    if not caller.principal.can_see(code):
        raise Forbidden(f"Area {code} is outside the areas granted to client {caller.principal.client_id!r}.")
    return subdistrict


async def _ensure_not_registered(session: AsyncSession, *, caller: CallerWithPurpose, hashes: Sequence[str]) -> None:
    found = (await session.execute(select(col(Member.citizen_id_hash), col(Member.household_id)).where(
        col(Member.citizen_id_hash).in_(hashes), col(Member.active).is_(True)))).first()
    if found is None:
        return
    holder = await session.get(Household, found.household_id)
    raise CitizenIdRegistered(found.household_id, holder is not None and caller.principal.can_see(holder.village_code))


class CitizenIdRegistered(Conflict):
    """A person being registered is already in an open household. Registering is a citizen-ID lookup (it needs
    `registry:lookup`, and the router writes it to the audit log); the answer is the same wherever the holder
    lies, naming the household only when it is in the caller's areas (as a lookup there would)."""

    def __init__(self, holder_id: str, visible: bool) -> None:
        super().__init__("This citizen ID already belongs to an open household.", type_slug="citizen-id-registered")
        if visible:
            self.extensions["household_id"] = holder_id
        self.holder_id = holder_id


def conflict_message(holder_id: str, visible: bool) -> str:
    """What an import says of a row whose person is already registered: the same rule as `CitizenIdRegistered`."""
    return f"already in open household {holder_id}" if visible else "already in an open household"


def _new_member(household_id: str, position: int, body: MemberIn, protector: CitizenIdProtector,
                now: datetime, relation: Relation | None = None) -> Member:
    return Member(
        id=new_id(), household_id=household_id, position=position,
        citizen_id_enc=protector.encrypt(body.citizen_id), citizen_id_hash=protector.hash(body.citizen_id),
        title=body.title, first_name=body.first_name, last_name=body.last_name,
        first_name_key=name_key(body.first_name), last_name_key=name_key(body.last_name), sex=body.sex.value,
        birth_date=body.birth_date, relation=(relation or body.relation).value, disability=body.disability,
        active=True, created_at=now,
    )


async def _flush(session: AsyncSession) -> None:
    """Flush; the database's own uniqueness check catches a citizen ID registered concurrently."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if "citizen" in str(exc.orig).lower() or "uq_member_active_citizen" in str(exc.orig):
            raise Conflict("This citizen ID was just registered in another open household.",
                           type_slug="citizen-id-registered") from None
        raise


async def register(session: AsyncSession, *, caller: CallerWithPurpose, body: HouseholdCreate,
                   protector: CitizenIdProtector) -> HouseholdRecord:
    """Register a household with its members; `household.registered` leaves with it."""
    address = body.address
    subdistrict = _address_area(caller, address.subdistrict_code, address.village_no)
    await _ensure_not_registered(session, caller=caller,
                                 hashes=[h for m in body.members for h in protector.hashes(m.citizen_id)])
    now = utcnow()
    household = Household(
        id=new_id(), province_code=subdistrict.code[:2], district_code=subdistrict.code[:4],
        subdistrict_code=subdistrict.code, village_no=address.village_no,
        village_code=areas.village_code(subdistrict.code, address.village_no), house_no=address.house_no,
        lat=address.lat, lon=address.lon, welfare_card=body.welfare_card,
        created_at=now, updated_at=now,
    )
    for source, column in SOURCE_COLUMNS.items():
        setattr(household, column, source in body.sources)
    members = [_new_member(household.id, i, m, protector, now) for i, m in enumerate(body.members, start=1)]
    session.add(household)
    session.add_all(members)
    await _flush(session)
    record = HouseholdRecord(household, members)
    await publish(session, HOUSEHOLD_REGISTERED, record)
    return record
