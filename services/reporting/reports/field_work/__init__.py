"""The field-work report: teams' visits to households and referrals to partner agencies in a fiscal year, by
area (`/field-work`), by field team (`/field-work/teams`) and by partner sector (`/field-work/sectors`).

Three tables of one province and fiscal year, each a tree for disclosure control:
- areas: province → district → sub-district → village, as the other area reports;
- teams: province → district → (team, district) rows. A row counts a team's visits to villages of that district
  (a team working in two districts has a row in each; visits that name no team are a row of their own,
  `team_id` null), so the rows of a district add up to the district's row in the area table: the two tables
  are linked, and the teams' rows are protected under the districts as the area table publishes them
  (`service.linked`);
- sectors: province → sector. Without `reporting:detail` it is published for a whole province only (as the
  progress report's months are), so its total is the province's cell of the area table.
`households_visited` and `households_helped` count distinct households: a household visited by two teams (or
helped by two sectors) counts in both rows and once in the total, so those rows may add up to more.
"""
