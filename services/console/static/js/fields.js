// The sixteen fields grouped by pillar, each with its device health and its KPIs.

import { get } from "./api.js";
import { el, number } from "./dom.js";
import { t } from "./i18n.js";

export async function loadFields(state) {
  state.pillars = (await get("api/fields")).pillars;
  renderFields(state);
}

function meetsTarget(kpi) {
  if (kpi.target == null || kpi.value == null) return null;
  return kpi.direction === "lower_is_better" ? kpi.value <= kpi.target : kpi.value >= kpi.target;
}

function kpiLine(kpi) {
  const verdict = meetsTarget(kpi);
  const classes = ["kpi", verdict === true ? "meets" : verdict === false ? "misses" : ""].join(" ");
  const target =
    kpi.target == null ? "" : ` (${t("fields.target", { target: number(kpi.target) })})`;
  return el(
    "div",
    { class: classes, title: kpi.description, "data-testid": "kpi", "data-kpi": kpi.id },
    el("span", { class: "name", text: kpi.name }),
    el("span", { class: "value", text: `${number(kpi.value)} ${kpi.unit}${target}` }),
  );
}

export function renderFields(state) {
  const box = document.getElementById("fields");
  box.replaceChildren();
  for (const pillar of state.pillars || []) {
    const section = el("div", { class: "pillar", "data-pillar": pillar.id });
    section.append(el("h3", { text: t(`pillar.${pillar.id}`) }));
    for (const field of pillar.fields) {
      const summary = field.summary;
      const health = summary
        ? t("fields.devices", { online: summary.online, total: summary.devices })
        : t("fields.no_access");
      const item = el(
        "div",
        {
          class: `field${state.field === field.id ? " selected" : ""}`,
          "data-testid": "field",
          "data-field": field.id,
          title: field.description,
          onclick: () => state.select({ field: state.field === field.id ? "" : field.id }),
        },
        el("div", { class: "name", text: field.name }),
        el("div", { class: "health", text: health }),
      );
      for (const kpi of summary ? summary.kpis : []) item.append(kpiLine(kpi));
      section.append(item);
    }
    box.append(section);
  }
}

export function fieldName(state, id) {
  for (const pillar of state.pillars || []) {
    for (const field of pillar.fields) if (field.id === id) return field.name;
  }
  return id;
}
