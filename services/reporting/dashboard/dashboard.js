// The Kaenkhun dashboard: the reports API drawn for people. No libraries, nothing fetched from the internet.
"use strict";

const TEXT = {
  th: {
    title: "แก่นคูน — ภาพรวมการแก้ไขปัญหาความยากจน", surveyYear: "ปีสำรวจ", lang: "English",
    deprivation: "ครัวเรือนที่ขาดแคลนรายมิติ", areas: "รายพื้นที่", drill: "กดชื่อพื้นที่เพื่อดูพื้นที่ย่อย",
    assistanceByArea: "เงินช่วยเหลือรายพื้นที่ (บาท)", progress: "ความก้าวหน้ารายเดือน", asOf: "ข้อมูล ณ",
    suppressedNote: "ตัวเลขที่อาจระบุตัวครัวเรือนได้ (1–4 และตัวเลขที่ใช้คำนวณย้อนกลับ) ถูกปกปิดเพื่อคุ้มครองข้อมูลส่วนบุคคล (แสดงเป็น —)",
    provinceSeries: "ตัวเลขรายเดือนเผยแพร่เฉพาะระดับจังหวัด",
    households: "ครัวเรือน", targetPoor: "ครัวเรือนเป้าหมาย", mpi: "ดัชนีความยากจนหลายมิติ (MPI)",
    paid: "เงินที่จ่ายแล้ว (บาท)", coverage: "ความครอบคลุมของความช่วยเหลือ", area: "พื้นที่", persons: "คน",
    targetPersons: "คนเป้าหมาย", exited: "พ้นความยากจน", grants: "เงินสงเคราะห์ครอบครัว",
    subsidies: "เงินอุดหนุน ศพค.", assessed: "ครัวเรือนที่สำรวจ", total: "รวม", loading: "กำลังโหลด…",
    failed: "โหลดข้อมูลไม่สำเร็จ", noData: "ยังไม่มีข้อมูล", teams: "ทีมปฏิบัติการ",
    centres: "ศูนย์ช่วยเหลือสังคมตำบล",
    dims: { health: "สุขภาพ", living: "ความเป็นอยู่", education: "การศึกษา", income: "รายได้",
            access: "การเข้าถึงบริการรัฐ" },
  },
  en: {
    title: "Kaenkhun — poverty eradication at a glance", surveyYear: "Survey year", lang: "ภาษาไทย",
    deprivation: "Households deprived, by dimension", areas: "By area", drill: "Click an area to see the areas inside it",
    assistanceByArea: "Assistance by area (baht)", progress: "Month by month", asOf: "Data as of",
    suppressedNote: "Figures that could identify a household (counts of 1–4 and those that would give them away) are hidden to protect personal data (shown as —)",
    provinceSeries: "Month-by-month figures are published for the whole province",
    households: "Households", targetPoor: "Target-poor households", mpi: "Multidimensional poverty index (MPI)",
    paid: "Money paid (baht)", coverage: "Coverage of the target poor", area: "Area", persons: "Persons",
    targetPersons: "Target-poor persons", exited: "Exited poverty", grants: "Family grants",
    subsidies: "Centre subsidies", assessed: "Households surveyed", total: "Total", loading: "Loading…",
    failed: "Could not load the figures", noData: "No data yet", teams: "Field teams",
    centres: "Social assistance centres",
    dims: { health: "Health", living: "Living conditions", education: "Education", income: "Income",
            access: "Access to public services" },
  },
};
const DIMENSIONS = ["health", "living", "education", "income", "access"];
const LEVEL_BELOW = { 2: "district", 4: "subdistrict", 6: "village" };
const params = new URLSearchParams(location.search);
// A token handed over in the fragment (#token=…) moves to this tab's session storage and leaves the address
// at once, so it is not kept in the history, a bookmark or a screenshot of the address bar.
const handed = new URLSearchParams(location.hash.slice(1)).get("token");
if (handed) {
  sessionStorage.setItem("kaenkhun.token", handed);
  history.replaceState(null, "", location.pathname + location.search);
}
const token = sessionStorage.getItem("kaenkhun.token");
const state = { lang: params.get("lang") === "en" ? "en" : "th", area: params.get("area") || "40", path: [],
                year: params.get("survey_year") ? Number(params.get("survey_year")) : null };

const t = (key) => TEXT[state.lang][key];
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    // Styles through the CSSOM: the Content-Security-Policy allows no inline style attribute.
    if (k === "onclick") node.addEventListener("click", v);
    else if (k === "width") node.style.width = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}
function number(value, digits = 0) {
  if (value === null || value === undefined) return "—";
  const locale = state.lang === "th" ? "th-TH" : "en-GB";
  return Number(value).toLocaleString(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
const percent = (v) => (v === null || v === undefined ? "—" : number(v * 100, 1) + "%");
const areaName = (row) => (state.lang === "th" ? row.area_name_th : row.area_name_en) || row.area_code;

async function api(path, query) {
  const url = `/v1/reports/${path}?${new URLSearchParams(query)}`;
  const response = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!response.ok) throw Object.assign(new Error(`${url}: ${response.status}`), { status: response.status });
  return response.json();
}

// Without reporting:detail, months are published for a whole province only (403 below it): show the province's.
async function monthly(area, months) {
  try {
    return { province: false, body: await api("progress", { area, ...months }) };
  } catch (error) {
    if (error.status !== 403 || area.length === 2) throw error;
    return { province: true, body: await api("progress", { area: area.slice(0, 2), ...months }) };
  }
}

function figure(name, label, value, shown) {
  return el("div", { class: "tile", "data-figure": name, "data-value": value === null ? "" : String(value) },
            el("div", { class: "label" }, label), el("div", { class: "value" }, shown));
}

function bars(container, items, gold) {
  container.replaceChildren();
  const top = Math.max(1, ...items.map((i) => Number(i.value) || 0));
  for (const item of items) {
    const width = item.value === null ? 0 : (100 * Number(item.value)) / top;
    container.append(el("div", { class: "bar", "data-bar": item.key, "data-value": item.value ?? "" },
      el("span", {}, item.label),
      el("div", { class: "track" }, el("div", { class: "fill" + (gold ? " gold" : ""), width: `${width}%` })),
      el("span", { class: "num" }, item.shown ?? number(item.value))));
  }
}

function progressChart(rows) {
  const w = 560, h = 180, pad = 28;
  const top = Math.max(1, ...rows.map((r) => Number(r.grant_amount || 0) + Number(r.subsidy_amount || 0)));
  const step = (w - 2 * pad) / Math.max(rows.length, 1);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", "100%");
  rows.forEach((r, i) => {
    const amount = Number(r.grant_amount || 0) + Number(r.subsidy_amount || 0);
    const bh = ((h - 2 * pad) * amount) / top;
    const bar = document.createElementNS(svg.namespaceURI, "rect");
    Object.entries({ x: pad + i * step + 2, y: h - pad - bh, width: Math.max(step - 4, 1), height: bh,
                     fill: "#2f6f8f", "data-month": r.month, "data-value": amount }).forEach(([k, v]) => bar.setAttribute(k, v));
    const title = document.createElementNS(svg.namespaceURI, "title");
    title.textContent = `${r.month}: ${number(amount, 2)}`;
    bar.append(title);
    svg.append(bar);
    if (i % 2 === 0) {
      const label = document.createElementNS(svg.namespaceURI, "text");
      Object.entries({ x: pad + i * step, y: h - 8 }).forEach(([k, v]) => label.setAttribute(k, v));
      label.textContent = r.month.slice(2);
      svg.append(label);
    }
  });
  $("progress").replaceChildren(svg);
}

function translate() {
  document.documentElement.lang = state.lang;
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  $("lang").textContent = t("lang");
}

function crumbs() {
  const nav = $("crumbs");
  nav.replaceChildren();
  state.path.forEach((step, i) => {
    if (i) nav.append(el("span", { class: "sep" }, "›"));
    nav.append(i === state.path.length - 1 ? el("span", {}, step.name)
      : el("a", { onclick: () => { state.path = state.path.slice(0, i + 1); state.area = step.code; render(); } }, step.name));
  });
}

function fiscalMonths(year) {
  const ce = year - 543;
  return { from: `${ce - 1}-10`, to: `${ce}-09` };
}

async function render() {
  translate();
  $("status").textContent = t("loading");
  try {
    if (state.year === null) {
      const years = await api("years", {});
      const choices = years.survey_years.length ? years.survey_years : [new Date().getFullYear() + 543];
      $("year").replaceChildren(...choices.map((y) => el("option", { value: y }, y)));
      state.year = choices[choices.length - 1];
    }
    $("year").value = String(state.year);
    const level = LEVEL_BELOW[state.area.length] || "village";
    const [poverty, money, progress, network] = await Promise.all([
      api("poverty", { area: state.area, level, survey_year: state.year }),
      api("assistance", { area: state.area, level, fiscal_year: state.year }),
      monthly(state.area, fiscalMonths(state.year)),
      api("field-network", { area: state.area.slice(0, 6) }),  // teams and centres: down to a sub-district
    ]);
    if (!state.path.length || state.path[state.path.length - 1].code !== state.area) {
      state.path.push({ code: state.area, name: areaName(poverty.total) });
    }
    state.path[state.path.length - 1].name = areaName(poverty.total);
    crumbs();
    const total = poverty.total, paid = money.total;
    const paidAmount = paid.grant_amount === null || paid.subsidy_amount === null ? null
      : (Number(paid.grant_amount) + Number(paid.subsidy_amount)).toFixed(2);
    $("tiles").replaceChildren(
      figure("households", t("households"), total.households, number(total.households)),
      figure("target_poor_households", t("targetPoor"), total.target_poor_households, number(total.target_poor_households)),
      figure("MPI", t("mpi"), total.MPI, total.MPI === null ? "—" : number(total.MPI, 3)),
      figure("money_paid", t("paid"), paidAmount, paidAmount === null ? "—" : number(paidAmount, 2)),
      figure("coverage", t("coverage"), paid.coverage, percent(paid.coverage)),
      figure("teams", t("teams"), network.total.teams, number(network.total.teams)),
      figure("social_assistance_centres", t("centres"), network.total.social_assistance_centres,
             number(network.total.social_assistance_centres)));
    bars($("dimensions"), DIMENSIONS.map((d) => ({ key: d, label: TEXT[state.lang].dims[d], value: total["deprived_" + d] })));
    const table = $("areas");
    table.tHead.replaceChildren(el("tr", {}, ...[t("area"), t("households"), t("persons"), t("assessed"),
      t("targetPoor"), t("targetPersons"), "MPI", t("exited")].map((h) => el("th", {}, h))));
    const cells = (row) => [number(row.households), number(row.persons), number(row.assessed_households),
      number(row.target_poor_households), number(row.target_poor_persons),
      row.MPI === null ? "—" : number(row.MPI, 3), number(row.exited)].map((v) => el("td", {}, v));
    const drillable = state.area.length < 8;
    table.tBodies[0].replaceChildren(
      ...poverty.rows.map((row) => el("tr", { "data-area": row.area_code },
        el("td", {}, drillable && row.area_code.length < 8
          ? el("a", { onclick: () => { state.area = row.area_code; render(); } }, areaName(row)) : areaName(row)),
        ...cells(row))),
      el("tr", { class: "total", "data-area": "total" }, el("td", {}, t("total")), ...cells(total)));
    bars($("assistance"), money.rows.filter((r) => Number(r.grant_amount) || Number(r.subsidy_amount)
      || r.grant_amount === null).map((r) => ({
      key: r.area_code, label: areaName(r),
      value: r.grant_amount === null || r.subsidy_amount === null ? null
        : Number(r.grant_amount) + Number(r.subsidy_amount),
      shown: r.grant_amount === null ? "—" : number(Number(r.grant_amount) + Number(r.subsidy_amount || 0), 2) })), true);
    progressChart(progress.body.rows);
    $("progress-note").textContent = progress.province ? t("provinceSeries") : "";
    $("asof").textContent = poverty.as_of ? new Date(poverty.as_of).toLocaleString(state.lang === "th" ? "th-TH" : "en-GB") : "—";
    $("status").textContent = poverty.total.households || poverty.total.households === null ? "" : t("noData");
    document.body.dataset.ready = "true";
  } catch (error) {
    $("status").textContent = `${t("failed")}: ${error.message}`;
    document.body.dataset.ready = "error";
  }
}

$("lang").addEventListener("click", () => { state.lang = state.lang === "th" ? "en" : "th"; render(); });
$("year").addEventListener("change", (e) => { state.year = Number(e.target.value); render(); });
render();
