// One metric of one device over a chosen range, drawn with the vendored uPlot.

import { get } from "./api.js";
import { el, toast } from "./dom.js";
import { t } from "./i18n.js";

let plot = null;

function box() {
  return document.getElementById("chart");
}

function hint(key) {
  if (plot) plot.destroy();
  plot = null;
  box().replaceChildren(el("p", { class: "hint", "data-i18n": key, text: t(key) }));
}

export async function loadChart(state) {
  const chosen = state.chart;
  if (!chosen) return;
  const since = document.getElementById("chart-range").value;
  const agg = document.getElementById("chart-agg").value;
  document.getElementById("chart-label").textContent = [chosen.site, chosen.device, chosen.metric]
    .filter(Boolean)
    .join(" / ");
  let answer;
  try {
    answer = await get("api/range", { ...chosen, since, agg });
  } catch (error) {
    toast(error.describe ? error.describe() : String(error));
    return;
  }
  const series = answer.series[0];
  if (!series || !series.points.length || typeof window.uPlot !== "function") {
    hint("chart.empty");
    return;
  }
  const xs = series.points.map((point) => point[0] / 1000);
  const ys = series.points.map((point) => point[1]);
  const width = Math.max(box().clientWidth - 8, 300);
  const end = Date.now() / 1000;
  const start = end - Number(since);
  // Axis labels follow the page's type size, which wall mode enlarges.
  const base = parseFloat(getComputedStyle(document.documentElement).fontSize) || 15;
  const font = `${Math.round(base * 0.8)}px sans-serif`;
  const options = {
    width,
    height: Math.round(Math.min(Math.max(window.innerHeight * 0.2, 160), 320)),
    scales: { x: { time: true, range: () => [start, end] } },
    series: [
      {},
      {
        label: `${chosen.metric} (${series.unit})`,
        stroke: "#4da3ff",
        width: 2,
        fill: "rgba(77,163,255,0.12)",
      },
    ],
    axes: [
      {
        font,
        size: base * 3.2,
        stroke: "#93a4bd",
        grid: { stroke: "#1a2740" },
        ticks: { stroke: "#1a2740" },
      },
      {
        font,
        size: base * 3.6,
        stroke: "#93a4bd",
        grid: { stroke: "#1a2740" },
        ticks: { stroke: "#1a2740" },
      },
    ],
  };
  if (plot) plot.destroy();
  box().replaceChildren();
  plot = new window.uPlot(options, [xs, ys], box());
}

export function resizeChart() {
  if (plot) plot.setSize({ width: Math.max(box().clientWidth - 8, 300), height: plot.height });
}
