"""The field-work report's columns: by area, by team and by partner sector, and the groups of count columns that
share one hidden pattern."""

from __future__ import annotations

from services.reporting.reports.areas import AREA_COLUMNS
from services.reporting.reports.table import Column, count_column

SECTORS = ("government", "private", "academic", "religious", "media", "civil_society", "people")
UNDER_WAY = ("open", "in_progress")  # a referral's statuses before it is done or cancelled

VISITS = (count_column("visits", "visits recorded in the fiscal year (by visit date)"),
          count_column("households_visited", "distinct households visited in the fiscal year"))
REFERRALS = (
    count_column("referrals_open", "referrals made in the fiscal year still open or in progress"),
    count_column("referrals_overdue", "of them, past their due date today"),
    count_column("referrals_done", "referrals made in the fiscal year that are done (cancelled ones count in "
                                   "none of these columns)"),
)
FIELD_WORK_COLUMNS = (*AREA_COLUMNS, *VISITS, *REFERRALS)
TEAM_COLUMNS = (
    Column("team_id", "str", "the field team (ทีมปฏิบัติการ); empty for visits that name no team"),
    Column("district_code", "str", "the district of the villages visited"),
    Column("district_name_th", "str", "Thai name"),
    Column("district_name_en", "str", "English name"),
    *VISITS,
)
SECTOR_COLUMNS = (
    Column("partner_sector", "str", "the sector of the partner agencies referred to"),
    *REFERRALS,
    count_column("households_helped", "distinct households the sector's partners helped in the fiscal year"),
)
# Column groups that share one hidden pattern: the household count first, the visits with it.
VISIT_GROUP = ("households_visited", "visits")
REFERRAL_GROUPS = (("referrals_open",), ("referrals_overdue",), ("referrals_done",))
