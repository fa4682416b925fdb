// The Kaenkhun dashboard: the reports API drawn for people. No libraries, nothing fetched from the internet.
// Every figure drawn carries data-* attributes (data-figure, data-bar, data-map-area, data-trend, data-month)
// with the API's value, so a browser test can compare what is shown with what the API answers.
"use strict";

const TEXT = {
  th: {
    title: "แก่นคูน — ภาพรวมการแก้ไขปัญหาความยากจน", surveyYear: "ปีสำรวจ", lang: "English", print: "พิมพ์",
    deprivation: "ครัวเรือนที่ขาดแคลนรายมิติ", areas: "รายพื้นที่", drill: "กดชื่อพื้นที่เพื่อดูพื้นที่ย่อย",
    assistanceByArea: "เงินช่วยเหลือรายพื้นที่ (บาท)", progress: "ความก้าวหน้ารายเดือน (บาท)", asOf: "ข้อมูล ณ",
    suppressedNote: "ตัวเลขที่อาจระบุตัวครัวเรือนได้ (1–4 และตัวเลขที่ใช้คำนวณย้อนกลับ) ถูกปกปิดเพื่อคุ้มครองข้อมูลส่วนบุคคล (แสดงเป็น —)",
    provinceSeries: "ตัวเลขรายเดือนเผยแพร่เฉพาะระดับจังหวัด",
    households: "ครัวเรือน", targetPoor: "ครัวเรือนเป้าหมาย", mpi: "ดัชนีความยากจนหลายมิติ (MPI)",
    paid: "เงินที่จ่ายแล้ว (บาท)", coverage: "ความครอบคลุมของความช่วยเหลือ", area: "พื้นที่", persons: "คน",
    targetPersons: "คนเป้าหมาย", exited: "พ้นความยากจน", grants: "เงินสงเคราะห์ครอบครัว",
    subsidies: "เงินอุดหนุน ศพค.", assessed: "ครัวเรือนที่สำรวจ", total: "รวม", loading: "กำลังโหลด…",
    failed: "โหลดข้อมูลไม่สำเร็จ", noData: "ยังไม่มีข้อมูล", teams: "ทีมปฏิบัติการ",
    centres: "ศูนย์ช่วยเหลือสังคมตำบล", map: "แผนที่", figure: "ตัวชี้วัด", hidden: "ปกปิด (—)",
    deprivedIn: "ครัวเรือนขาดแคลนด้าน", notPlaced: "ไม่มีพิกัด", gridNote: "ไม่มีพิกัดของตำบล: แสดงเป็นตาราง", gridVillages: "หมู่บ้าน: แสดงเป็นตาราง",
    mapSource: "ตำแหน่ง: GeoNames (CC BY 4.0)", open: "ดูพื้นที่นี้", trends: "แนวโน้มรายปีสำรวจ",
    fieldWork: "งานภาคสนาม", fiscalYear: "ปีงบประมาณ", visitsByArea: "การเยี่ยมบ้านรายพื้นที่", visitsByTeam: "การเยี่ยมบ้านรายทีม",
    referrals: "การส่งต่อรายภาคีเครือข่าย", visits: "ครั้งที่เยี่ยม", open_: "ค้างดำเนินการ",
    overdue: "เกินกำหนด", done: "เสร็จสิ้น", noTeam: "ไม่ระบุทีม", download: "ดาวน์โหลด", team: "ทีม", province: "จังหวัด",
    sectors: { government: "ภาครัฐ", private: "ภาคเอกชน", academic: "ภาควิชาการ", religious: "ภาคศาสนา",
               media: "ภาคสื่อ", civil_society: "ภาคประชาสังคม", people: "ภาคประชาชน" },
    dims: { health: "สุขภาพ", living: "ความเป็นอยู่", education: "การศึกษา", income: "รายได้",
            access: "การเข้าถึงบริการรัฐ" },
  },
  en: {
    title: "Kaenkhun — poverty eradication at a glance", surveyYear: "Survey year", lang: "ภาษาไทย", print: "Print",
    deprivation: "Households deprived, by dimension", areas: "By area", drill: "Click an area to see the areas inside it",
    assistanceByArea: "Assistance by area (baht)", progress: "Month by month (baht)", asOf: "Data as of",
    suppressedNote: "Figures that could identify a household (counts of 1–4 and those that would give them away) are hidden to protect personal data (shown as —)",
    provinceSeries: "Month-by-month figures are published for the whole province",
    households: "Households", targetPoor: "Target-poor households", mpi: "Multidimensional poverty index (MPI)",
    paid: "Money paid (baht)", coverage: "Coverage of the target poor", area: "Area", persons: "Persons",
    targetPersons: "Target-poor persons", exited: "Exited poverty", grants: "Family grants",
    subsidies: "Centre subsidies", assessed: "Households surveyed", total: "Total", loading: "Loading…",
    failed: "Could not load the figures", noData: "No data yet", teams: "Field teams",
    centres: "Social assistance centres", map: "Map", figure: "Figure", hidden: "hidden (—)",
    deprivedIn: "Households deprived in", notPlaced: "No position", gridNote: "Sub-districts have no position here: drawn as a grid", gridVillages: "Villages, drawn as a grid",
    mapSource: "Positions: GeoNames (CC BY 4.0)", open: "Open this area", trends: "Trends by survey year",
    fieldWork: "Field work", fiscalYear: "Fiscal year", visitsByArea: "Home visits by area", visitsByTeam: "Home visits by team",
    referrals: "Referrals by partner sector", visits: "Visits", open_: "Open",
    overdue: "Overdue", done: "Done", noTeam: "No team named", download: "Download", team: "Team", province: "Province",
    sectors: { government: "Government", private: "Private sector", academic: "Academia", religious: "Religious",
               media: "Media", civil_society: "Civil society", people: "People" },
    dims: { health: "Health", living: "Living conditions", education: "Education", income: "Income",
            access: "Access to public services" },
  },
};
const TH_MONTHS = ["ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค."];
const EN_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DIMENSIONS = ["health", "living", "education", "income", "access"];
const FIGURES = ["target_poor_households", "MPI", ...DIMENSIONS.map((d) => `deprived_${d}`), "coverage"];
const LEVEL_BELOW = { 2: "district", 4: "subdistrict", 6: "village", 8: "village" };
const SVG = "http://www.w3.org/2000/svg";
const GOLD = ["#fff3d6", "#f6d38a", "#e0a63f", "#b8741a", "#7a4408"];
const BLUE = ["#e3eef5", "#b5d3e4", "#7fb0cd", "#3f7fa8", "#1f4e6e"];
const HIDDEN_FILL = "#c9ced2";

// A token handed over in the fragment (#token=…) moves to this tab's session storage and leaves the address
// at once, so it is not kept in the history, a bookmark or a screenshot of the address bar.
const handed = new URLSearchParams(location.hash.slice(1)).get("token");
if (handed) {
  sessionStorage.setItem("kaenkhun.token", handed);
  history.replaceState(history.state, "", location.pathname + location.search);
}
const token = sessionStorage.getItem("kaenkhun.token");

// -- the state is the address: ?area=4001&survey_year=2568&lang=th&figure=MPI (bookmarkable, Back works) --
const state = { lang: "th", area: "40", year: null, figure: "target_poor_households", fiscal: null };
// Field work is this fiscal year's unless the address names one (fiscal_year=): Oct–Sep, B.E., Thai time.
function currentFiscalYear() {
  const now = new Date(Date.now() + 7 * 3600 * 1000);
  return now.getUTCFullYear() + (now.getUTCMonth() >= 9 ? 1 : 0) + 543;
}
function readAddress() {
  const params = new URLSearchParams(location.search);
  state.lang = params.get("lang") === "en" ? "en" : "th";
  const area = params.get("area") || "40";
  state.area = /^(\d{2}|\d{4}|\d{6}|\d{8})$/.test(area) ? area : "40";
  const year = Number(params.get("survey_year"));
  state.year = Number.isInteger(year) && year >= 2500 && year <= 2700 ? year : null;
  const fiscal = Number(params.get("fiscal_year"));
  state.fiscal = Number.isInteger(fiscal) && fiscal >= 2500 && fiscal <= 2700 ? fiscal : null;
  state.figure = FIGURES.includes(params.get("figure")) ? params.get("figure") : "target_poor_households";
}
function address(changes) {
  const next = { ...state, ...changes };
  const params = new URLSearchParams({ area: next.area });
  if (next.year !== null) params.set("survey_year", next.year);
  if (next.fiscal !== null) params.set("fiscal_year", next.fiscal);
  params.set("lang", next.lang);
  params.set("figure", next.figure);
  return `${location.pathname}?${params}`;
}
function navigate(changes) {
  history.pushState(null, "", address(changes));
  readAddress();
  render();
}
function link(label, changes, attrs) {
  return el("a", { href: address(changes), ...(attrs || {}),
                   onclick: (e) => { e.preventDefault(); navigate(changes); } }, label);
}

const t = (key) => TEXT[state.lang][key];
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    // Styles through the CSSOM: the Content-Security-Policy allows no inline style attribute.
    if (k === "onclick") node.addEventListener("click", v);
    else if (k === "css") Object.assign(node.style, v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}
const present = (nodes) => nodes.filter((n) => n !== null && n !== undefined);
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") node.addEventListener("click", v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}
const locale = () => (state.lang === "th" ? "th-TH" : "en-GB");
function number(value, digits = 0) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString(locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function compact(value) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(locale(), { notation: "compact", maximumFractionDigits: 1 }).format(Number(value));
}
const percent = (v) => (v === null || v === undefined ? "—" : number(v * 100, 1) + "%");
const areaName = (row) => (state.lang === "th" ? row.area_name_th : row.area_name_en) || row.area_code;
const nameOf = (a) => (state.lang === "th" ? a.name_th : a.name_en) || a.code;
const raw = (v) => (v === null || v === undefined ? "" : String(v));
// "2025-10" → "ต.ค. 68" (Buddhist era) in Thai, "Oct 2025" in English.
function monthLabel(month) {
  const [year, m] = month.split("-").map(Number);
  return state.lang === "th" ? `${TH_MONTHS[m - 1]} ${String((year + 543) % 100).padStart(2, "0")}`
    : `${EN_MONTHS[m - 1]} ${year}`;
}
const yearLabel = (be) => (state.lang === "th" ? `พ.ศ. ${be}` : `${be - 543}`);
function dateTime(iso) {
  if (!iso) return "—";
  const when = new Date(iso);
  return state.lang === "th"
    ? when.toLocaleString("th-TH-u-ca-buddhist", { day: "numeric", month: "long", year: "numeric", hour: "2-digit", minute: "2-digit" })
    : when.toLocaleString("en-GB", { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
}
// Households deprived in a dimension: the poverty report's deprived_<dimension>.
const deprived = (row, d) => row[`deprived_${d}`];

// -- the API --

function reportUrl(path, query) {
  return `/v1/reports/${path}?${new URLSearchParams(query)}`;
}
const authHeaders = () => (token ? { Authorization: `Bearer ${token}` } : {});
async function api(path, query) {
  const url = reportUrl(path, query);
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) throw Object.assign(new Error(`${url}: ${response.status}`), { status: response.status });
  return response.json();
}
// A report the page can do without (not there yet, or not for this caller): null instead of an error.
async function optional(path, query) {
  try {
    return await api(path, query);
  } catch (error) {
    if ([401, 403, 404, 422].includes(error.status)) return null;
    throw error;
  }
}
async function areaMap(code) {
  const response = await fetch(`/dashboard/map/${code}.json`);
  return response.ok ? response.json() : null;
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

// -- downloads: what a panel shows, as CSV or Excel, from the same report URL --

// The query parameters each report declares (the service's OpenAPI document): the API refuses any other, so a
// download asks for the header language only where the report offers it. Null when the document is not there.
let declaredParameters = null;
function declared() {
  declaredParameters ??= fetch("/openapi.json").then((r) => (r.ok ? r.json() : null)).then((doc) => doc && new Map(
    Object.entries(doc.paths).filter(([, item]) => item.get).map(([path, item]) => [path,
      new Set((item.get.parameters || []).filter((p) => p.in === "query").map((p) => p.name))]))).catch(() => null);
  return declaredParameters;
}

function downloads(id, reports, known) {
  const box = $(id);
  box.replaceChildren(el("span", { class: "label" }, t("download")));
  for (const [path, query] of reports) {
    const names = known && known.get(`/v1/reports/${path}`);
    for (const [format, label] of [["csv", "CSV"], ["xlsx", "Excel"]]) {
      const wanted = Object.entries({ ...query, format, lang: state.lang }).filter(([name]) => !names || names.has(name));
      const href = reportUrl(path, Object.fromEntries(wanted));
      const name = `${path.replace("/", "-")}-${query.area}-${query.survey_year || query.fiscal_year || query.from}.${format}`;
      box.append(el("button", { type: "button", "data-download": href, "data-format": format, title: `${path} ${label}`,
                                onclick: () => save(href, name) }, reports.length > 1 ? `${path} ${label}` : label));
    }
  }
}
async function save(href, name) {
  const response = await fetch(href, { headers: authHeaders() });
  if (!response.ok) { $("status").textContent = `${t("failed")}: ${href}: ${response.status}`; return; }
  const url = URL.createObjectURL(await response.blob());
  const anchor = el("a", { href: url, download: name });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// -- drawing --

function figure(name, label, value, shown) {
  return el("div", { class: "tile", "data-figure": name, "data-value": raw(value) },
            el("div", { class: "label" }, label), el("div", { class: "value" }, shown));
}
// The top of an axis of four steps, each step a round number (1, 2, 2.5 or 5 × 10ⁿ; whole for counts).
function niceTop(max, whole = true) {
  if (!(max > 0)) return 4;
  const want = max / 4, unit = 10 ** Math.floor(Math.log10(want));
  let step = [1, 2, 2.5, 5, 10].map((k) => k * unit).find((k) => k >= want);
  if (whole) step = Math.max(1, Math.ceil(step));
  return step * 4;
}
function legend(items) {
  return el("div", { class: "legend" }, ...items.map(([cls, label]) =>
    el("span", { class: "key" }, el("span", { class: `swatch ${cls}` }), label)));
}
// Horizontal bars on one scale with an axis below; each bar is one figure, labelled; a hidden figure (null)
// draws a labelled placeholder, not nothing.
function bars(container, items, series) {
  container.replaceChildren();
  if (!items.length) { container.append(el("p", { class: "hint" }, t("noData"))); return; }
  const top = niceTop(Math.max(0, ...items.map((i) => Number(i.value) || 0)), items.every((i) => Number.isInteger(Number(i.value || 0))));
  let group = null;
  for (const item of items) {
    if (item.group !== undefined && item.group !== group) {
      group = item.group;
      container.append(el("div", { class: "group" }, item.group));
    }
    const hidden = item.value === null || item.value === undefined;
    const width = hidden ? 100 : (100 * Number(item.value)) / top;
    container.append(el("div", { class: "bar" + (hidden ? " hidden" : ""), "data-bar": item.key, "data-value": raw(item.value) },
      el("span", { class: "name" }, item.label),
      el("div", { class: "track" }, el("div", { class: `fill ${hidden ? "none" : item.cls || "s0"}`, css: { width: `${width}%` } })),
      el("span", { class: "num" }, hidden ? "—" : item.shown ?? number(item.value))));
  }
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  container.append(el("div", { class: "bar axis" }, el("span"),
    el("div", { class: "scale" }, ...ticks.map((f) => el("span", { class: "tick", css: { left: `${f * 100}%` } }, compact(top * f)))),
    el("span")));
  if (series) container.append(legend([...series, ["none", t("hidden")]]));
}

// Vertical grouped bars in SVG: y axis with ticks, a label per group (x), the value on each bar, a legend.
function columns(container, groups, series, attrs) {
  const w = 720, h = 240, left = 56, right = 8, top = 18, bottom = 34;
  const all = groups.flatMap((g) => series.map((s) => Number(g.values[s.key]) || 0));
  const max = niceTop(Math.max(0, ...all), all.every(Number.isInteger));
  const plot = h - top - bottom;
  const step = (w - left - right) / Math.max(groups.length, 1);
  const barW = Math.max(Math.min((step - 6) / series.length, 40), 2);
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img" });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, y = top + plot - (plot * i) / 4;
    chart.append(svg("line", { x1: left, x2: w - right, y1: y, y2: y, class: i ? "grid" : "baseline" }),
                 svg("text", { x: left - 4, y: y + 4, "text-anchor": "end", class: "tick" }, max >= 1000 ? compact(v) : number(v, Number.isInteger(max / 4) ? 0 : 2)));
  }
  groups.forEach((g, i) => {
    const x0 = left + i * step + (step - barW * series.length) / 2;
    series.forEach((s, j) => {
      const value = g.values[s.key], x = x0 + j * barW;
      const data = { ...attrs(g, s), "data-value": raw(value) };
      if (value === null || value === undefined) {
        chart.append(svg("text", { x: x + barW / 2, y: top + plot - 3, "text-anchor": "middle", class: "value hidden", ...data }, "—"));
        return;
      }
      const bh = (plot * Number(value)) / max;
      chart.append(svg("rect", { x: x + 1, y: top + plot - bh, width: Math.max(barW - 2, 1), height: bh, class: s.cls, ...data },
                       svg("title", {}, `${g.label} · ${s.label}: ${number(value, s.digits || 0)}`)));
      if (Number(value)) chart.append(svg("text", { x: x + barW / 2, y: top + plot - bh - 3, "text-anchor": "middle", class: "value" }, s.digits === 3 ? number(value, 3) : compact(value)));
    });
    chart.append(svg("text", { x: left + i * step + step / 2, y: h - bottom + 16, "text-anchor": "middle", class: "label",
                             "data-label": g.key }, g.label));
  });
  container.replaceChildren(chart, legend([...series.map((s) => [s.cls, s.label]), ["none", t("hidden")]]));
}

function figureLabel(name) {
  if (name === "MPI") return "MPI";
  if (name === "coverage") return t("coverage");
  if (name === "target_poor_households") return t("targetPoor");
  return `${t("deprivedIn")}${state.lang === "th" ? "" : " "}${TEXT[state.lang].dims[name.replace("deprived_", "")].toLowerCase()}`;
}
function figureValue(name, poverty, money) {
  if (name === "coverage") return money ? money.coverage : null;
  if (!poverty) return null;
  if (name.startsWith("deprived_")) return deprived(poverty, name.replace("deprived_", ""));
  return poverty[name];
}
const showFigure = (name, v) => (name === "coverage" ? percent(v) : name === "MPI" ? (v === null ? "—" : number(v, 3)) : number(v));

// The map: a circle per area at its point, shaded by the chosen figure; areas with no point are listed; where
// most areas have no point (sub-districts) they are drawn as a grid of squares instead.
function drawMap(info, poverty, money) {
  const box = $("map");
  // Villages are not in the official geography: below a sub-district, the report's rows are the areas.
  const children = info && info.children.length ? info.children
    : poverty.rows.map((r) => ({ code: r.area_code, name_th: r.area_name_th, name_en: r.area_name_en, lat: null, lon: null }));
  if (!children.length) { box.replaceChildren(el("p", { class: "hint" }, t("noData"))); return; }
  const byCode = (rows) => Object.fromEntries((rows || []).map((r) => [r.area_code, r]));
  const pov = byCode(poverty.rows), mon = byCode(money.rows);
  const items = children.map((c) => ({ ...c, value: figureValue(state.figure, pov[c.code], mon[c.code]) ?? null,
    known: Boolean(state.figure === "coverage" ? mon[c.code] : pov[c.code]) }));
  const values = items.filter((c) => c.value !== null && c.known).map((c) => Number(c.value));
  const max = Math.max(0, ...values), min = Math.min(max, ...values);
  const palette = state.figure === "coverage" ? BLUE : GOLD;
  const classOf = (v) => (max === min ? (max ? 2 : 0) : Math.min(palette.length - 1, Math.floor(((v - min) / (max - min)) * palette.length)));
  const dark = (c) => c.known && c.value !== null && classOf(Number(c.value)) >= 3;
  const fill = (c) => (!c.known ? "#ffffff" : c.value === null ? HIDDEN_FILL : palette[classOf(Number(c.value))]);
  const info_ = el("p", { class: "map-info", id: "map-info" });
  const tap = (c) => info_.replaceChildren(`${nameOf(c)}: ${c.known ? showFigure(state.figure, c.value) : t("noData")} `,
    link(`${t("open")} ›`, { area: c.code }));
  const w = 520, h = 440, pad = 34;
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img", "aria-label": figureLabel(state.figure) });
  const placed = items.filter((c) => c.lat !== null);
  const mark = (c, shape) => {
    shape.setAttribute("data-map-area", c.code);
    shape.setAttribute("data-value", c.known ? raw(c.value) : "");
    shape.setAttribute("fill", fill(c));
    shape.setAttribute("class", "mark");
    shape.addEventListener("click", () => tap(c));
    shape.append(svg("title", {}, `${nameOf(c)}: ${c.known ? showFigure(state.figure, c.value) : t("noData")}`));
    return shape;
  };
  let unplaced = [];
  if (placed.length * 2 >= items.length) {
    const meanLat = placed.reduce((s, c) => s + c.lat, 0) / placed.length;
    const k = Math.cos((meanLat * Math.PI) / 180);
    const xs = placed.map((c) => c.lon * k), ys = placed.map((c) => c.lat);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const scale = Math.min((w - 2 * pad) / (x1 - x0 || 1), (h - 2 * pad) / (y1 - y0 || 1));
    const ox = (w - (x1 - x0) * scale) / 2, oy = (h - (y1 - y0) * scale) / 2;
    for (const c of placed) {
      const x = ox + (c.lon * k - x0) * scale, y = h - oy - (c.lat - y0) * scale;
      chart.append(mark(c, svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 13 })),
                   svg("text", { x: x.toFixed(1), y: (y + 24).toFixed(1), "text-anchor": "middle", class: "place" }, nameOf(c)),
                   svg("text", { x: x.toFixed(1), y: (y + 4).toFixed(1), "text-anchor": "middle", class: `inside${dark(c) ? " dark" : ""}` },
                       c.known ? (state.figure === "coverage" ? percent(c.value) : state.figure === "MPI" ? (c.value === null ? "—" : number(c.value, 2)) : compact(c.value)) : ""));
    }
    unplaced = items.filter((c) => c.lat === null);
  } else {
    const cols = Math.ceil(Math.sqrt(items.length * (w / h))), size = Math.min((w - 8) / cols, 64);
    items.forEach((c, i) => {
      const x = 4 + (i % cols) * size, y = 4 + Math.floor(i / cols) * size;
      chart.append(mark(c, svg("rect", { x, y, width: size - 3, height: size - 3, rx: 3 })),
                   svg("text", { x: x + size / 2, y: y + size / 2 - 2, "text-anchor": "middle", class: `place${dark(c) ? " dark" : ""}` },
                       c.code.length === 8 ? `${state.lang === "th" ? "หมู่" : "Village"} ${Number(c.code.slice(6))}` : nameOf(c).slice(0, 10)),
                   svg("text", { x: x + size / 2, y: y + size / 2 + 11, "text-anchor": "middle", class: `inside${dark(c) ? " dark" : ""}` },
                       c.known ? showFigure(state.figure, c.value) : ""));
    });
    chart.setAttribute("viewBox", `0 0 ${w} ${Math.ceil(items.length / cols) * size + 8}`);
  }
  const bound = (v) => (state.figure === "coverage" ? percent(v) : number(v, state.figure === "MPI" ? 3 : Number.isInteger(v) ? 0 : 1));
  const scaleItems = (max === min ? [0] : palette.map((_, i) => i)).map((i) => {
    const from = min + ((max - min) * i) / palette.length, to = min + ((max - min) * (i + 1)) / palette.length;
    return el("span", { class: "key" }, el("span", { class: "swatch", css: { background: palette[max === min ? classOf(max) : i] } }),
              !values.length ? "" : max === min ? bound(min) : `${bound(from)}–${bound(to)}`);
  });
  const parts = [chart, el("div", { class: "legend", "data-legend": state.figure }, el("strong", {}, figureLabel(state.figure)), ...scaleItems,
    el("span", { class: "key" }, el("span", { class: "swatch", css: { background: HIDDEN_FILL } }), t("hidden")))];
  if (placed.length * 2 < items.length) parts.push(el("p", { class: "hint" }, t(state.area.length >= 6 ? "gridVillages" : "gridNote")));
  else if (unplaced.length) {
    parts.push(el("p", { class: "hint unplaced" }, `${t("notPlaced")}: `, ...unplaced.flatMap((c, i) => [i ? ", " : "",
      el("span", { "data-map-area": c.code, "data-value": c.known ? raw(c.value) : "" }, `${nameOf(c)} ${c.known ? showFigure(state.figure, c.value) : ""}`)])));
  }
  parts.push(info_, el("p", { class: "hint" }, t("mapSource")));
  box.replaceChildren(...parts);
}

function trendsChart(years, bodies) {
  const panel = $("trends-panel");
  panel.hidden = years.length < 2;
  if (years.length < 2) return;
  const groups = years.map((year, i) => ({ key: year, label: yearLabel(year), values: bodies[i] ? bodies[i].total : {} }));
  columns($("trends"), groups, [
    { key: "target_poor_households", label: t("targetPoor"), cls: "s0" },
    { key: "exited", label: t("exited"), cls: "s1" },
  ], (g, s) => ({ "data-trend": `${g.key}:${s.key}` }));
  columns($("trends-mpi"), groups, [{ key: "MPI", label: "MPI", cls: "s2", digits: 3 }],
          (g, s) => ({ "data-trend": `${g.key}:${s.key}` }));
}

function progressChart(rows) {
  columns($("progress"), rows.map((r) => ({ key: r.month, label: monthLabel(r.month), values: r })), [
    { key: "grant_amount", label: t("grants"), cls: "s0", digits: 2 },
    { key: "subsidy_amount", label: t("subsidies"), cls: "s1", digits: 2 },
  ], (g, s) => ({ "data-month": g.key, "data-series": s.key }));
}

function fieldWork(byArea, byTeam, bySector) {
  const none = (id) => $(id).replaceChildren(el("p", { class: "hint", "data-empty": "true" }, t("noData")));
  // Areas and sectors with nothing to show are left out (a hidden figure, null, is shown as such).
  const some = (r, keys) => keys.some((k) => r[k] === null || Number(r[k]));
  const areasVisited = byArea ? byArea.rows.filter((r) => some(r, ["visits"])) : [];
  const sectors = bySector ? bySector.rows.filter((r) => some(r, ["referrals_open", "referrals_overdue", "referrals_done"])) : [];
  if (areasVisited.length) {
    bars($("visits-area"), areasVisited.map((r) => ({ key: `visits:${r.area_code}`, label: areaName(r), value: r.visits })),
         [["s0", t("visits")]]);
  } else none("visits-area");
  if (byTeam && byTeam.rows.length) {
    bars($("visits-team"), byTeam.rows.map((r) => ({
      key: `team:${r.district_code}:${r.team_id || ""}`, value: r.visits,
      group: state.lang === "th" ? r.district_name_th : r.district_name_en,
      label: r.team_name || (r.team_id ? `${t("team")} …${String(r.team_id).slice(-4)}` : t("noTeam")),
    })), [["s0", t("visits")]]);
  } else none("visits-team");
  if (sectors.length) {
    bars($("referrals"), sectors.flatMap((r) => [["referrals_open", "open_", "s1"], ["referrals_overdue", "overdue", "s2"],
      ["referrals_done", "done", "s0"]].map(([key, label, cls]) => ({
      key: `sector:${r.partner_sector}:${key}`, label: t(label), value: r[key], cls,
      group: TEXT[state.lang].sectors[r.partner_sector] || r.partner_sector,
    }))), [["s1", t("open_")], ["s2", t("overdue")], ["s0", t("done")]]);
  } else none("referrals");
}

function translate() {
  document.documentElement.lang = state.lang;
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  $("lang").textContent = t("lang");
  $("print").textContent = t("print");
  $("figure").replaceChildren(...FIGURES.map((f) => el("option", { value: f }, figureLabel(f))));
  $("figure").value = state.figure;
}

function crumbs(info, poverty) {
  const steps = info ? [...info.ancestors, info.area] : [];
  if (state.area.length === 8) steps.push({ code: state.area, name_th: poverty.total.area_name_th, name_en: poverty.total.area_name_en });
  if (!steps.length) steps.push({ code: state.area, name_th: poverty.total.area_name_th, name_en: poverty.total.area_name_en });
  $("crumbs").replaceChildren(...present(steps.flatMap((step, i) => [
    i ? el("span", { class: "sep" }, "›") : null,
    i === steps.length - 1 ? el("span", { "data-crumb": step.code }, nameOf(step)) : link(nameOf(step), { area: step.code }, { "data-crumb": step.code }),
  ])));
}

function fiscalMonths(year) {
  const ce = year - 543;
  return { from: `${ce - 1}-10`, to: `${ce}-09` };
}

let generation = 0;
async function render() {
  const mine = ++generation;
  translate();
  $("status").textContent = t("loading");
  document.body.dataset.ready = "loading";
  try {
    const years = await api("years", {});
    const surveyYears = years.survey_years.length ? years.survey_years : [new Date().getFullYear() + 543];
    if (state.year === null) {
      state.year = surveyYears[surveyYears.length - 1];
      history.replaceState(null, "", address({}));
    }
    const choices = surveyYears.includes(state.year) ? surveyYears : [...surveyYears, state.year].sort();
    $("year").replaceChildren(...choices.map((y) => el("option", { value: y }, state.lang === "th" ? y : `${y} (${y - 543})`)));
    $("year").value = String(state.year);
    const area = state.area, year = state.year, level = LEVEL_BELOW[area.length];
    const district = area.slice(0, 4);
    const fiscal = state.fiscal ?? currentFiscalYear();
    const fiscalChoices = [...new Set([...years.fiscal_years, currentFiscalYear(), fiscal])].sort();
    $("fiscal").replaceChildren(...fiscalChoices.map((y) => el("option", { value: y }, state.lang === "th" ? y : `${y} (${y - 544}–${String(y - 543).slice(2)})`)));
    $("fiscal").value = String(fiscal);
    const [poverty, money, progress, network, info, byArea, byTeam, bySector, trend, known] = await Promise.all([
      api("poverty", { area, level, survey_year: year }),
      api("assistance", { area, level, fiscal_year: year }),
      monthly(area, fiscalMonths(year)),
      api("field-network", { area: area.slice(0, 6) }),  // teams and centres: down to a sub-district
      areaMap(area.length === 8 ? area.slice(0, 6) : area),
      optional("field-work", { area, fiscal_year: fiscal, level }),
      optional("field-work/teams", { area: area.length > 4 ? district : area, fiscal_year: fiscal }),
      optional("field-work/sectors", { area, fiscal_year: fiscal }),
      Promise.all(surveyYears.length > 1 ? surveyYears.map((y) => optional("poverty", { area, level, survey_year: y })) : []),
      declared(),
    ]);
    if (mine !== generation) return;  // the address changed meanwhile: a newer render draws
    crumbs(info, poverty);
    const total = poverty.total, paid = money.total;
    const paidAmount = paid.grant_amount === null || paid.subsidy_amount === null ? null
      : (Number(paid.grant_amount) + Number(paid.subsidy_amount)).toFixed(2);
    $("tiles").replaceChildren(
      figure("households", t("households"), total.households, number(total.households)),
      figure("target_poor_households", t("targetPoor"), total.target_poor_households, number(total.target_poor_households)),
      figure("MPI", t("mpi"), total.MPI, total.MPI === null ? "—" : number(total.MPI, 3)),
      figure("exited", t("exited"), total.exited, number(total.exited)),
      figure("money_paid", t("paid"), paidAmount, paidAmount === null ? "—" : number(paidAmount, 2)),
      figure("coverage", t("coverage"), paid.coverage, percent(paid.coverage)),
      figure("teams", t("teams"), network.total.teams, number(network.total.teams)),
      figure("social_assistance_centres", t("centres"), network.total.social_assistance_centres,
             number(network.total.social_assistance_centres)));
    drawMap(info, poverty, money);
    bars($("dimensions"), DIMENSIONS.map((d) => ({ key: d, label: TEXT[state.lang].dims[d], value: deprived(total, d) })),
         [["s0", t("households")]]);
    const table = $("areas");
    table.tHead.replaceChildren(el("tr", {}, ...[t("area"), t("households"), t("persons"), t("assessed"),
      t("targetPoor"), t("targetPersons"), "MPI", t("exited")].map((h) => el("th", {}, h))));
    const cells = (row) => [number(row.households), number(row.persons), number(row.assessed_households),
      number(row.target_poor_households), number(row.target_poor_persons),
      row.MPI === null ? "—" : number(row.MPI, 3), number(row.exited)].map((v) => el("td", {}, v));
    table.tBodies[0].replaceChildren(
      ...poverty.rows.map((row) => el("tr", { "data-area": row.area_code },
        el("td", {}, area.length < 8 && row.area_code.length < 8 ? link(areaName(row), { area: row.area_code }) : areaName(row)),
        ...cells(row))),
      el("tr", { class: "total", "data-area": "total" }, el("td", {}, t("total")), ...cells(total)));
    bars($("assistance"), money.rows.filter((r) => Number(r.grant_amount) || Number(r.subsidy_amount)
      || r.grant_amount === null || r.subsidy_amount === null).flatMap((r) => [
      { key: `${r.area_code}:grant_amount`, group: areaName(r), label: t("grants"), value: r.grant_amount, cls: "s0", shown: number(r.grant_amount, 2) },
      { key: `${r.area_code}:subsidy_amount`, group: areaName(r), label: t("subsidies"), value: r.subsidy_amount, cls: "s1", shown: number(r.subsidy_amount, 2) },
    ]), [["s0", t("grants")], ["s1", t("subsidies")]]);
    progressChart(progress.body.rows);
    $("progress-note").textContent = progress.province ? t("provinceSeries") : "";
    trendsChart(surveyYears.length > 1 ? surveyYears : [], trend);
    fieldWork(byArea, byTeam, bySector);
    const months = fiscalMonths(year);
    downloads("dl-map", [["poverty", { area, level, survey_year: year }], ["assistance", { area, level, fiscal_year: year }]], known);
    downloads("dl-dimensions", [["poverty", { area, level, survey_year: year }]], known);
    downloads("dl-areas", [["poverty", { area, level, survey_year: year }]], known);
    downloads("dl-assistance", [["assistance", { area, level, fiscal_year: year }]], known);
    downloads("dl-progress", [["progress", { area: progress.province ? area.slice(0, 2) : area, ...months }]], known);
    downloads("dl-field", [["field-work", { area, fiscal_year: fiscal, level }], ["field-work/sectors", { area, fiscal_year: fiscal }]], known);
    $("asof").textContent = dateTime(poverty.as_of);
    $("status").textContent = total.households || total.households === null ? "" : t("noData");
    document.body.dataset.ready = "true";
  } catch (error) {
    if (mine !== generation) return;
    $("status").textContent = `${t("failed")}: ${error.message}`;
    document.body.dataset.ready = "error";
  }
}

$("lang").addEventListener("click", () => navigate({ lang: state.lang === "th" ? "en" : "th" }));
$("year").addEventListener("change", (e) => navigate({ year: Number(e.target.value) }));
$("figure").addEventListener("change", (e) => navigate({ figure: e.target.value }));
$("fiscal").addEventListener("change", (e) => navigate({ fiscal: Number(e.target.value) }));
$("print").addEventListener("click", () => window.print());
window.addEventListener("popstate", () => { readAddress(); render(); });
readAddress();
if (state.year !== null) history.replaceState(null, "", address({}));  // the address in full, for a bookmark
render();
