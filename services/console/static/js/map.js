// A schematic map of the sites, drawn from their coordinates with no tile server: the
// control room may have no internet. Sites without coordinates are placed on a grid.

import { get } from "./api.js";
import { svg } from "./dom.js";
import { language, t } from "./i18n.js";

const PAD = 40;
const STATE_COLOURS = { online: "#3ccf6e", stale: "#ffb020", offline: "#ff4d4f" };
const RANK = { offline: 3, stale: 2, unknown: 1, unspecified: 1, online: 0 };

export async function loadSites(state) {
  state.sites = await get("api/sites");
  renderMap(state);
}

function place(sites, source, WIDTH, HEIGHT) {
  if (source !== "records") {
    return sites.map((s) => ({
      ...s,
      px: PAD + s.x * (WIDTH - 2 * PAD),
      py: PAD + s.y * (HEIGHT - 2 * PAD),
    }));
  }
  const lats = sites.map((s) => s.lat);
  const lons = sites.map((s) => s.lon);
  const shrink = Math.cos((((Math.min(...lats) + Math.max(...lats)) / 2) * Math.PI) / 180);
  const spanX = (Math.max(...lons) - Math.min(...lons)) * shrink || 1;
  const spanY = Math.max(...lats) - Math.min(...lats) || 1;
  const scale = Math.min((WIDTH - 2 * PAD) / spanX, (HEIGHT - 2 * PAD) / spanY);
  const offsetX = (WIDTH - spanX * scale) / 2;
  const offsetY = (HEIGHT - spanY * scale) / 2;
  return sites.map((s) => ({
    ...s,
    px: sites.length === 1 ? WIDTH / 2 : offsetX + (s.lon - Math.min(...lons)) * shrink * scale,
    py: sites.length === 1 ? HEIGHT / 2 : offsetY + (Math.max(...lats) - s.lat) * scale,
  }));
}

function worstState(state, site) {
  let worst = null;
  for (const device of state.devices || []) {
    if (device.site !== site) continue;
    if (worst == null || (RANK[device.state] ?? 1) > (RANK[worst] ?? 1)) worst = device.state;
  }
  return worst;
}

export function renderMap(state) {
  // Drawn in the element's own pixels, so that labels keep their size on a wall and a laptop.
  const map = document.getElementById("map");
  const WIDTH = Math.max(map.clientWidth, 200);
  const HEIGHT = Math.max(map.clientHeight, 150);
  map.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  const title = map.querySelector("title");
  map.replaceChildren(title);
  const cell = Math.max(Math.round(WIDTH / 16), 40);
  for (let x = 0; x <= WIDTH; x += cell) {
    map.append(svg("line", { class: "grid-line", x1: x, y1: 0, x2: x, y2: HEIGHT }));
  }
  for (let y = 0; y <= HEIGHT; y += cell) {
    map.append(svg("line", { class: "grid-line", x1: 0, y1: y, x2: WIDTH, y2: y }));
  }
  const data = state.sites || { sites: [], source: "devices" };
  const source = document.getElementById("map-source");
  source.textContent = data.sites.length
    ? t(data.source === "records" ? "map.from_records" : "map.from_devices")
    : t("map.empty");
  const alerting = new Set([...state.alerts.values()].map((a) => a.site));
  for (const site of place(data.sites, data.source, WIDTH, HEIGHT)) {
    const worst = worstState(state, site.id);
    const group = svg("g", {
      class: `site${state.site === site.id ? " selected" : ""}`,
      "data-testid": "map-site",
      "data-site": site.id,
      "data-state": worst || "none",
      transform: `translate(${site.px.toFixed(1)},${site.py.toFixed(1)})`,
    });
    group.append(svg("circle", { class: "dot", r: 9, fill: STATE_COLOURS[worst] || "#8a94a6" }));
    if (alerting.has(site.id)) group.append(svg("circle", { class: "ring", r: 15 }));
    group.append(
      svg("text", { x: 18, y: 5, text: (language() === "vi" && site.name_vi) || site.name }),
    );
    group.addEventListener("click", () =>
      state.select({ site: state.site === site.id ? "" : site.id }),
    );
    map.append(group);
  }
}
