"""The field-work report's columns: by area, by team and by partner sector, and the groups of count columns that
share one hidden pattern."""

from __future__ import annotations

from services.reporting.reports.areas import AREA_COLUMNS
from services.reporting.reports.table import Column, count_column

SECTORS = ("government", "private", "academic", "religious", "media", "civil_society", "people")
UNDER_WAY = ("open", "in_progress")  # a referral's statuses before it is done, cancelled or declined

VISITS = (count_column("visits", "visits recorded in the fiscal year (by visit date)", "จำนวนครั้งที่เยี่ยมบ้าน"),
          count_column("households_visited", "distinct households visited in the fiscal year",
                       "ครัวเรือนที่ได้รับการเยี่ยม"))
REFERRALS = (
    count_column("referrals_open", "referrals made in the fiscal year still open or in progress",
                 "ส่งต่อ: ยังดำเนินการ"),
    count_column("referrals_overdue", "of them, past their due date today", "ส่งต่อ: เกินกำหนด"),
    count_column("referrals_done", "referrals made in the fiscal year that are done (cancelled ones, and those "
                                   "the partner declined, count in none of these columns)", "ส่งต่อ: เสร็จสิ้น"),
)
FIELD_WORK_COLUMNS = (*AREA_COLUMNS, *VISITS, *REFERRALS)
TEAM_COLUMNS = (
    Column("team_id", "str", "the field team (ทีมปฏิบัติการ); empty for visits that name no team",
           label_th="ทีมปฏิบัติการ"),
    Column("district_code", "str", "the district of the villages visited", label_th="รหัสอำเภอ"),
    Column("district_name_th", "str", "Thai name", label_th="ชื่ออำเภอ (ไทย)"),
    Column("district_name_en", "str", "English name", label_th="ชื่ออำเภอ (อังกฤษ)"),
    *VISITS,
)
SECTOR_COLUMNS = (
    Column("partner_sector", "str", "the sector of the partner agencies referred to", label_th="ภาคีเครือข่าย"),
    *REFERRALS,
    count_column("households_helped", "distinct households the sector's partners helped in the fiscal year",
                 "ครัวเรือนที่ได้รับความช่วยเหลือ"),
)
# Column groups that share one hidden pattern: the household count first, the visits with it.
VISIT_GROUP = ("households_visited", "visits")
REFERRAL_GROUPS = (("referrals_open",), ("referrals_overdue",), ("referrals_done",))
