"""`kaenkhun demo`: a synthetic Khon Kaen (province 40) loaded through the public HTTP APIs, as real clients do.

What it loads reproduces the source document's figures for B.E. 2565 (DOMAIN.md), times `scale` where they are
people:
- the official 26 districts and 199 sub-districts (the registry's area hierarchy, read over HTTP);
- 211 field teams (`POST /v1/teams`): one per sub-district, and one more in each of the 12 largest districts;
- 224 sub-district social assistance centres (one per local government) and 78 family development centres
  (`POST /v1/centres`);
- households with Thai names, valid citizen IDs, ages and sexes (`POST /v1/imports`, CSV files of 1,000):
  3,569 target households with 9,090 persons (1,952 of three persons, 1,617 of two), and 1,431 more households
  that are not target poor (deprived in nothing, or deprived but without a welfare card);
- their assessments on TPMAP's 17 indicators (`POST /v1/assessment-imports`), answered for exactly the
  indicators that apply to the household's members on the survey date (read from `GET /v1/indicator-sets`);
- the same households' assessments of the next survey year, B.E. 2566, in which some leave target poverty and a
  few enter it (`population.next_year_fails`);
- budgets (`PUT /v1/budgets/...`), then the ministry's pushes, signed as Standard Webhooks: one batch of
  360 families × 3,000 baht = 1,080,000 baht (`POST /v1/disbursement-batches`, by the head's citizen ID) and
  78 × 10,000 = 780,000 baht of centre subsidies (`POST /v1/centre-subsidies`);
- the teams' field work of the current fiscal year: visits, referrals to partners of five sectors at every
  stage, help given (`Loader.field_visits`).

Everything comes from one seeded random generator, so the same seed and scale give the same people. Running
it again against the same system changes nothing: teams and centres that exist are kept, imports of the same
rows are unchanged, budgets are set to the same amounts and pushes repeat their Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from ops.demo.population import (
    FAMILY_DEVELOPMENT_CENTRES,
    FEMALE,
    FIELD_PARTNERS,
    FIELD_WORK_FIGURES,
    FISCAL_YEAR,
    GRANT,
    GRANTS_PAID_ON,
    IMPORT_FILE_HOUSEHOLDS,
    INDICATOR_SET,
    MALE,
    NEXT_SURVEY_YEAR,
    NEXT_SURVEYED_ON,
    POSITIONS,
    PROVINCE,
    SOCIAL_ASSISTANCE_CENTRES,
    SUBSIDIES_PAID_ON,
    SUBSIDY,
    SURNAMES,
    SURVEY_YEAR,
    TEAMS,
    Area,
    DemoError,
    Geography,
    Home,
    Scenario,
    assessment_row,
    csv_file,
    household_rows,
)
from services.assessment.sets.schemas import IndicatorSet
from shared import clock, webhooks
from shared.money import fiscal_year

Say = Callable[[str], None]


@dataclass
class Endpoints:
    registry: str
    assessment: str
    assistance: str
    reporting: str


class Loader:
    """One run of the demo against running services."""

    def __init__(self, endpoints: Endpoints, *, client_id: str, client_secret: str, webhook_secret: str,
                 scenario: Scenario, say: Say = print, timeout_s: float = 600.0) -> None:
        self.endpoints = endpoints
        self.client_id, self.client_secret = client_id, client_secret
        self.webhook_secret = webhook_secret
        self.scenario = scenario
        self.say = say
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(timeout=120.0)
        self.in_flight = asyncio.Semaphore(8)  # a polite client: at most 8 requests at once
        self.headers: dict[str, str] = {}

    def rng(self, purpose: str) -> random.Random:
        """A generator of its own for each part, so a part skipped on a second run changes no other."""
        return random.Random(f"{self.scenario.seed}:{purpose}")

    async def close(self) -> None:
        await self.http.aclose()

    # HTTP helpers: every answer is checked; a problem+json body is shown as it came.
    async def call(self, method: str, url: str, *, expect: Sequence[int] = (200, 201), **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        for attempt in range(60):
            try:
                async with self.in_flight:
                    response = await self.http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:  # a service restarting: try again, as any client would
                if attempt == 59:
                    raise DemoError(f"{method} {url}: {exc!r}") from exc
                await asyncio.sleep(1)
                continue
            retry_after = response.headers.get("retry-after")
            busy = response.status_code in (429, 503) or response.status_code == 409 and retry_after is not None
            if busy:
                await asyncio.sleep(float(retry_after or 1))
                continue
            if response.status_code not in expect:
                raise DemoError(f"{method} {url} answered {response.status_code}: {response.text[:2000]}")
            return response.json() if response.content else None
        raise DemoError(f"{method} {url}: still busy after 60 attempts")

    async def sign_in(self) -> None:
        token = await self.call("POST", f"{self.endpoints.registry}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret})
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}

    async def geography(self) -> Geography:
        province = await self.call("GET", f"{self.endpoints.registry}/v1/areas/{PROVINCE}")
        districts = [Area(d["code"], d["name_th"]) for d in province["children"]]
        found = await asyncio.gather(*(self.call("GET", f"{self.endpoints.registry}/v1/areas/{d.code}")
                                       for d in districts))
        return Geography(districts, {d.code: [Area(s["code"], s["name_th"]) for s in f["children"]]
                                     for d, f in zip(districts, found, strict=True)})

    async def indicator_set(self) -> IndicatorSet:
        body = await self.call("GET", f"{self.endpoints.assessment}/v1/indicator-sets/{INDICATOR_SET}")
        body.pop("latest", None)  # SetDetail = the set as defined + whether it is the newest version
        return IndicatorSet.model_validate(body)

    async def every(self, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a list, page after page (`next_cursor`)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.call("GET", url, params=params | {"limit": 500} | ({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            if (cursor := page["next_cursor"]) is None:
                return items

    # -- teams, centres, budgets --------------------------------------------------------------------------

    async def teams(self, geography: Geography) -> None:
        url = f"{self.endpoints.registry}/v1/teams"
        existing = await self.every(url, {"province": PROVINCE})
        if existing:
            self.say(f"teams       {len(existing):,} already there: kept")
            return
        bodies = []
        for district in geography.districts:
            for subdistrict in geography.subdistricts[district.code]:
                bodies.append((district, f"ทีมปฏิบัติการตำบล{subdistrict.name_th}", [subdistrict.code]))
        largest = sorted(geography.districts, key=lambda d: -len(geography.subdistricts[d.code]))
        for district in largest[:TEAMS - len(bodies)]:
            bodies.append((district, f"ทีมปฏิบัติการเทศบาล อำเภอ{district.name_th}",
                           [s.code for s in geography.subdistricts[district.code]][:3]))
        rng = self.rng("teams")
        for n, (district, name, covered) in enumerate(bodies, 1):
            members = [{"name": f"{rng.choice(('นาย', 'นาง', 'นางสาว'))}{rng.choice(MALE + FEMALE)} "
                                f"{rng.choice(SURNAMES)}",
                        "position": position, "agency": f"{agency}{district.name_th}" if agency.endswith(
                            ("อำเภอ", "ตำบล")) else agency}
                       for position, agency in rng.sample(POSITIONS, rng.randint(3, 5))]
            await self.call("POST", url, json={"name": name, "district_code": district.code,
                                               "subdistrict_codes": covered, "members": members})
            if n % 50 == 0 or n == len(bodies):
                self.say(f"teams       {n:,} / {len(bodies):,}")

    async def centres(self, geography: Geography) -> list[str]:
        """Register the centres (unless there); the ids of the family development centres, in order."""
        url = f"{self.endpoints.assistance}/v1/centres"
        kind_fdc = "family_development_centre"
        existing = await self.every(url, {"area": PROVINCE, "kind": kind_fdc})
        if existing:
            self.say("centres     already there: kept")
            return [c["id"] for c in sorted(existing, key=lambda c: (c["subdistrict_code"], c["name"]))]
        subdistricts = geography.all_subdistricts()
        rng = self.rng("centres")
        bodies = [{"kind": "tambon_social_assistance_centre", "name": f"ศูนย์ช่วยเหลือสังคมตำบล{s.name_th}",
                   "subdistrict_code": s.code, "local_government": f"องค์การบริหารส่วนตำบล{s.name_th}"}
                  for s in subdistricts]
        # A sub-district with a town municipality as well as a tambon administration has a centre for each.
        for s in rng.sample(subdistricts, SOCIAL_ASSISTANCE_CENTRES - len(bodies)):
            bodies.append({"kind": "tambon_social_assistance_centre", "name": f"ศูนย์ช่วยเหลือสังคมเทศบาลตำบล{s.name_th}",
                           "subdistrict_code": s.code, "local_government": f"เทศบาลตำบล{s.name_th}"})
        fdcs = sorted(rng.sample(subdistricts, FAMILY_DEVELOPMENT_CENTRES), key=lambda s: s.code)
        bodies += [{"kind": kind_fdc, "name": f"ศูนย์พัฒนาครอบครัวในชุมชนตำบล{s.name_th}", "subdistrict_code": s.code,
                    "local_government": f"องค์การบริหารส่วนตำบล{s.name_th}"} for s in fdcs]
        ids = []
        for n, body in enumerate(bodies, 1):
            made = await self.call("POST", url, json=body)
            if body["kind"] == kind_fdc:
                ids.append(made["id"])
            if n % 50 == 0 or n == len(bodies):
                self.say(f"centres     {n:,} / {len(bodies):,}")
        return ids

    async def budgets(self, *, grants: Decimal, subsidies: Decimal) -> None:
        for programme, amount in (("family_grant", grants), ("centre_subsidy", subsidies)):
            await self.call("PUT", f"{self.endpoints.assistance}/v1/budgets/{programme}/{FISCAL_YEAR}/{PROVINCE}",
                            json={"amount": f"{amount:.2f}"})
        self.say(f"budgets     family grants {grants:,.2f} baht, centre subsidies {subsidies:,.2f} baht (FY "
                 f"{FISCAL_YEAR})")

    # -- households and assessments -----------------------------------------------------------------------

    async def _import(self, url: str, content: bytes, name: str) -> dict[str, Any]:
        job = await self.call("POST", url, files={"file": (name, content, "text/csv")}, expect=(202,))
        while True:
            status: dict[str, Any] = await self.call("GET", f"{url}/{job['id']}", params={"errors_limit": 5000})
            if status["status"] in ("done", "failed"):
                if status["status"] == "failed":
                    raise DemoError(f"import {name} failed: {status['failure']}")
                return status
            await asyncio.sleep(0.2)

    async def households(self, homes: list[Home]) -> None:
        url = f"{self.endpoints.registry}/v1/imports"
        columns = list(household_rows(homes[:1])[0])
        done = 0
        for start in range(0, len(homes), IMPORT_FILE_HOUSEHOLDS):
            chunk = homes[start:start + IMPORT_FILE_HOUSEHOLDS]
            name = f"ครัวเรือน-{start // IMPORT_FILE_HOUSEHOLDS:03d}.csv"
            status = await self._import(url, csv_file(household_rows(chunk), columns), name)
            if status["rows_rejected"]:
                raise DemoError(f"the registry rejected rows: {json.dumps(status['errors'][:5], ensure_ascii=False)}")
            done += len(chunk)
            self.say(f"households  {done:,} / {len(homes):,}  ({status['households_created']:,} new, "
                     f"{status['households_unchanged']:,} unchanged in this file)")
        await self._find_ids(homes)

    async def _find_ids(self, homes: list[Home]) -> None:
        """Each household's id, from the registry's list (a house number is unique in its village here)."""
        by_address = {(h.village_code, h.house_no): h for h in homes}
        cursor = None
        while True:
            params: dict[str, Any] = {"province": PROVINCE, "limit": 500} | ({"cursor": cursor} if cursor else {})
            page = await self.call("GET", f"{self.endpoints.registry}/v1/households", params=params)
            for item in page["items"]:
                home = by_address.get((item["address"]["village_code"], item["address"]["house_no"]))
                if home is not None:
                    home.household_id = item["id"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        missing = [h.key for h in homes if h.household_id is None]
        if missing:
            raise DemoError(f"{len(missing)} households not found in the registry's list, e.g. {missing[:3]}")

    async def assessments(self, homes: list[Home], indicator_set: IndicatorSet, *, survey_year: int = SURVEY_YEAR,
                          fails: dict[str, set[str]] | None = None) -> None:
        """Import the assessments of a survey year: the first (the homes' own `fails`) or the next (`fails` by
        home key, surveyed on `NEXT_SURVEYED_ON`)."""
        url = f"{self.endpoints.assessment}/v1/assessment-imports"
        if fails is None:
            rng = self.rng("assessments")
            rows = [assessment_row(h, indicator_set, rng) for h in homes]
        else:
            rng = self.rng(f"assessments-{survey_year}")
            rows = [assessment_row(h, indicator_set, rng, survey_year=survey_year, surveyed_on=NEXT_SURVEYED_ON,
                                   fails=fails[h.key]) for h in homes]
        columns = ["household_id", "indicator_set", "survey_year", "surveyed_on",
                   *(i.measurement.name if i.measurement else i.code for i in indicator_set.indicators)]
        done = 0
        for start in range(0, len(rows), IMPORT_FILE_HOUSEHOLDS):
            chunk = rows[start:start + IMPORT_FILE_HOUSEHOLDS]
            deadline = time.monotonic() + self.timeout_s
            while True:
                name = f"แบบสำรวจ-{survey_year}-{start // 1000:03d}.csv"
                status = await self._import(url, csv_file(chunk, columns), name)
                waiting = [e for e in status["errors"] if "not reached the assessment service" in e["message"]]
                if len(waiting) < status["rows_rejected"]:
                    raise DemoError(f"assessments rejected: {json.dumps(status['errors'][:5], ensure_ascii=False)}")
                if not waiting:
                    break
                if time.monotonic() > deadline:
                    raise DemoError(f"{len(waiting)} households never reached the assessment service")
                self.say(f"assessments waiting for {len(waiting):,} households to reach the assessment service")
                await asyncio.sleep(1)
            done += len(chunk)
            self.say(f"assessments {survey_year}: {done:,} / {len(rows):,}  ({status['assessments_created']:,} new, "
                     f"{status['assessments_unchanged']:,} unchanged in this file)")

    # -- the ministry's pushes ----------------------------------------------------------------------------

    async def push(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST as the ministry's grant system does: signed, with an Idempotency-Key (the batch reference)."""
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = webhooks.signed_headers([self.webhook_secret], f"msg_{body['batch_ref']}", raw)
        headers |= {"Idempotency-Key": body["batch_ref"], "Content-Type": "application/json"}
        answer: dict[str, Any] = await self.call("POST", f"{self.endpoints.assistance}{path}", content=raw,
                                                 headers=headers)
        return answer

    async def wait_target_poor(self, homes: Sequence[Home]) -> None:
        """Until the assistance service has each household's assessment (it pays only the target poor)."""
        deadline = time.monotonic() + self.timeout_s
        pending = list(homes)
        while pending:
            answers = await asyncio.gather(*(self.call(
                "GET", f"{self.endpoints.assistance}/v1/households/{h.household_id}/timeline", expect=(200, 404))
                for h in pending))
            pending = [h for h, a in zip(pending, answers, strict=True) if not (a and a.get("target_poor"))]
            if pending:
                if time.monotonic() > deadline:
                    raise DemoError(f"{len(pending)} assessments never reached the assistance service")
                self.say(f"grants      waiting for {len(pending):,} assessments to reach the assistance service")
                await asyncio.sleep(1)

    async def field_work(self, homes: Sequence[Home], tag: str) -> int:
        """The logbook's paths through the public API, as a team and a partner agency walk them: each home is
        visited, referred to the provincial hospital, taken in hand, helped (with an Idempotency-Key, as a
        partner retries) and done. A home the assistance service does not know yet is passed by (404). Returns
        how many homes were helped."""
        assistance, today = self.endpoints.assistance, clock.today()
        partner = await self._partner("โรงพยาบาลขอนแก่น")
        helped = 0
        for home in homes:
            url = f"{assistance}/v1/households/{home.household_id}"
            visit = await self.call("POST", f"{url}/visits", expect=(201, 404), json={
                "visited_on": today.isoformat(), "stage": "survive", "problems": [
                    {"dimension": "health", "indicator_code": "exercise", "description": "ผู้สูงอายุไม่ได้ออกกำลังกาย"}]})
            if visit is None or "id" not in visit:
                continue
            referral = await self.call("POST", f"{url}/referrals", json={
                "dimension": "health", "action": "ตรวจสุขภาพและให้คำแนะนำการออกกำลังกาย", "partner_id": partner,
                "due_on": (today + timedelta(days=30)).isoformat()})
            step = f"{assistance}/v1/referrals/{referral['id']}"
            await self.call("PATCH", step, json={"status": "in_progress"})
            await self.call("POST", f"{step}/help", headers={"Idempotency-Key": f"{tag}-{home.key}"}, json={
                "kind": "health", "given_on": today.isoformat(), "notes": "ตรวจสุขภาพที่บ้าน"})
            await self.call("PATCH", step, json={"status": "done", "note": "ตรวจแล้ว สุขภาพแข็งแรง"})
            helped += 1
        return helped

    async def _partner(self, name: str, sector: str = "government") -> str:
        """The id of the partner of this name and sector serving the province (registered once)."""
        url = f"{self.endpoints.assistance}/v1/partners"
        found = [p for p in await self.every(url, {"sector": sector}) if p["name"] == name]
        if found:
            return str(found[0]["id"])
        made = await self.call("POST", url, json={"name": name, "sector": sector, "areas": [PROVINCE]})
        return str(made["id"])

    async def field_visits(self, homes: Sequence[Home], indicator_set: IndicatorSet) -> dict[str, int]:
        """The teams' work of this fiscal year: each home visited today by the team covering its sub-district,
        about what it fails; one in five visited twice; four in five referred to a partner of one of five
        sectors, and the referrals left at every stage (done with help given, in progress, open, open and past
        due, cancelled). Kept if the province has visits already. Returns what the field-work report must show
        (`expected_field_work`)."""
        assistance, today = self.endpoints.assistance, clock.today()
        if (await self.call("GET", f"{assistance}/v1/visits", params={"area": PROVINCE, "limit": 1}))["items"]:
            self.say("field work  already there: kept")
            return {}
        await self.wait_target_poor(homes)  # known to the assistance service
        teams: dict[str, str] = {}
        for team in sorted(await self.every(f"{self.endpoints.registry}/v1/teams", {"province": PROVINCE}),
                           key=lambda t: (len(t["subdistrict_codes"]), t["id"])):
            for code in team["subdistrict_codes"]:
                teams.setdefault(code, team["id"])
        partners = [await self._partner(name, sector) for name, sector in FIELD_PARTNERS]
        dimension = {i.code: i.dimension for i in indicator_set.indicators}
        wanted = dict.fromkeys(("visits", "households_visited", "referrals_open", "referrals_overdue",
                                "referrals_done"), 0)

        async def work(n: int, home: Home) -> None:
            url = f"{assistance}/v1/households/{home.household_id}"
            code = sorted(home.fails)[0] if home.fails else None
            problems = [{"dimension": dimension[code], "indicator_code": code, "description": "พบปัญหาตามแบบสำรวจ"}
                        ] if code else []
            for _ in range(2 if n % 5 == 0 else 1):
                await self.call("POST", f"{url}/visits", json={
                    "visited_on": today.isoformat(), "stage": "survive", "team_id": teams.get(home.subdistrict),
                    "problems": problems})
                wanted["visits"] += 1
            wanted["households_visited"] += 1
            stage = n % 5
            if code is None or stage == 4:
                return
            due = today + timedelta(days=-10 if stage == 3 else 30)
            referral = await self.call("POST", f"{url}/referrals", json={
                "dimension": dimension[code], "action": "ติดตามแก้ไขปัญหาตามแผนพัฒนาครัวเรือน",
                "partner_id": partners[n // 5 % len(partners)], "due_on": due.isoformat()})
            step = f"{assistance}/v1/referrals/{referral['id']}"
            if stage in (0, 1):
                await self.call("PATCH", step, json={"status": "in_progress"})
            if stage == 0:
                await self.call("POST", f"{step}/help", headers={"Idempotency-Key": f"demo-{home.key}"}, json={
                    "kind": "service", "given_on": today.isoformat(), "notes": "ให้ความช่วยเหลือตามแผน"})
                await self.call("PATCH", step, json={"status": "done", "note": "แก้ไขแล้ว"})
                wanted["referrals_done"] += 1
            else:
                wanted["referrals_open"] += 1
                wanted["referrals_overdue"] += stage == 3
            if n % 10 == 7:  # every other open one of stage 2: the partner could not take it on
                await self.call("PATCH", step, json={"status": "cancelled", "note": "หน่วยงานไม่สามารถรับได้"})
                wanted["referrals_open"] -= 1

        await asyncio.gather(*(work(n, h) for n, h in enumerate(homes)))
        self.say(f"field work  {wanted['visits']:,} visits to {len(homes):,} households; referrals: "
                 f"{wanted['referrals_open']:,} open ({wanted['referrals_overdue']:,} overdue), "
                 f"{wanted['referrals_done']:,} done")
        return wanted

    async def grants(self, homes: Sequence[Home], batch_no: int) -> dict[str, Any]:
        await self.wait_target_poor(homes)
        body = {"batch_ref": f"MSDHS-KK-{FISCAL_YEAR}-{batch_no:03d}", "programme": "family_grant",
                "fiscal_year": FISCAL_YEAR, "paid_on": GRANTS_PAID_ON.isoformat(),
                "items": [{"item_ref": f"{batch_no:03d}-{n:05d}", "citizen_id": h.members[0].citizen_id,
                           "amount": f"{GRANT:.2f}"} for n, h in enumerate(homes, 1)]}
        batch = await self.push("/v1/disbursement-batches", body)
        totals = _all_accepted(batch)
        self.say(f"grants      batch {body['batch_ref']}: {totals['accepted']} families × {GRANT:,.2f} = "
                 f"{Decimal(totals['accepted_amount']):,.2f} baht")
        return batch

    async def subsidies(self, centre_ids: Sequence[str]) -> dict[str, Any]:
        body = {"batch_ref": f"MSDHS-KK-FDC-{FISCAL_YEAR}-001", "fiscal_year": FISCAL_YEAR,
                "paid_on": SUBSIDIES_PAID_ON.isoformat(),
                "items": [{"item_ref": f"FDC-{n:03d}", "centre_id": c, "amount": f"{SUBSIDY:.2f}"}
                          for n, c in enumerate(centre_ids, 1)]}
        batch = await self.push("/v1/centre-subsidies", body)
        totals = _all_accepted(batch)
        self.say(f"subsidies   {totals['accepted']} family development centres: "
                 f"{Decimal(totals['accepted_amount']):,.2f} baht")
        return batch

    # -- reporting ----------------------------------------------------------------------------------------

    async def figures(self) -> dict[str, Any]:
        """The headline figures as the reporting service gives them now."""
        base = f"{self.endpoints.reporting}/v1/reports"
        poverty, assistance, network = await asyncio.gather(
            self.call("GET", f"{base}/poverty", params={"area": PROVINCE, "survey_year": SURVEY_YEAR}),
            self.call("GET", f"{base}/assistance", params={"area": PROVINCE, "fiscal_year": FISCAL_YEAR}),
            self.call("GET", f"{base}/field-network", params={"area": PROVINCE}))
        p, a, n = poverty["total"], assistance["total"], network["total"]
        changes = await self.poverty_changes()
        return {"districts": n["districts"], "subdistricts": n["subdistricts"], "teams": n["teams"],
                "social_assistance_centres": n["social_assistance_centres"],
                "family_development_centres": n["family_development_centres"],
                "households": p["households"], "target_poor_households": p["target_poor_households"],
                "target_poor_persons": p["target_poor_persons"], "families_granted": a["families_granted"],
                "grant_amount": a["grant_amount"], "centres_subsidised": a["centres_subsidised"],
                "subsidy_amount": a["subsidy_amount"], **changes}

    async def poverty_changes(self) -> dict[str, Any]:
        """The second survey year as the poverty report gives it: target poor, exits and entries."""
        body = await self.call("GET", f"{self.endpoints.reporting}/v1/reports/poverty",
                               params={"area": PROVINCE, "survey_year": NEXT_SURVEY_YEAR})
        total = body["total"]
        return {"target_poor_households_2566": total["target_poor_households"], "exited_2566": total["exited"],
                "entered_2566": total["entered"]}

    async def field_work_figures(self) -> dict[str, Any]:
        """This fiscal year's field work as the field-work report gives it."""
        body = await self.call("GET", f"{self.endpoints.reporting}/v1/reports/field-work",
                               params={"area": PROVINCE, "fiscal_year": fiscal_year(clock.today())})
        return {name: body["total"][name] for name in FIELD_WORK_FIGURES}

    async def wait_for(self, wanted: dict[str, Any], what: Callable[[], Awaitable[dict[str, Any]]] | None = None,
                       ) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            got = await (what or self.figures)()
            differ = {k: (got.get(k), v) for k, v in wanted.items() if got.get(k) != v}
            if not differ:
                return got
            if time.monotonic() > deadline:
                raise DemoError(f"reporting never showed the expected figures: {differ} (got, wanted)")
            self.say("reporting   catching up: " + ", ".join(f"{k} {g}/{w}" for k, (g, w) in differ.items()))
            await asyncio.sleep(1)

def _all_accepted(batch: dict[str, Any]) -> dict[str, Any]:
    totals: dict[str, Any] = batch["totals"]
    if totals["rejected"]:
        refused = [i for i in batch["items"] if i["status"] == "rejected"]
        raise DemoError(f"batch {batch['batch_ref']}: {totals['rejected']} items rejected, e.g. "
                        f"{json.dumps(refused[:3], ensure_ascii=False)}")
    return totals
